"""Webhook signatures, destinations and their settings."""

from __future__ import annotations

import dataclasses

import pytest

from dropq.errors import ConfigError
from dropq.settings import load_settings
from dropq.topology import TOPOLOGY, TopologyError, Webhook
from dropq.webhooks import below, sign, verify

SECRET = "s3cr3t"


def test_a_signature_is_an_hmac_sha256_of_the_timestamp_and_body_and_expires() -> None:
    # The value any HMAC-SHA256 implementation computes: printf '1795334400.{"a": 1}' | openssl dgst -sha256 -hmac s3cr3t
    signature = sign(SECRET, "1795334400", b'{"a": 1}')
    assert signature == "sha256=d907dc4afc146c93198d0f4f2383aa97ca305722f00c0f2a1cbd6ce09227fc1b"
    assert verify(SECRET, "1795334400", b'{"a": 1}', signature, now=1795334400 + 60)
    assert not verify(SECRET, "1795334400", b'{"a": 2}', signature, now=1795334400), "another body"
    assert not verify("other", "1795334400", b'{"a": 1}', signature, now=1795334400), "another secret"
    assert not verify(SECRET, "1795334400", b'{"a": 1}', signature, now=1795334400 + 3600), "a replay an hour later"
    assert not verify(SECRET, "soon", b'{"a": 1}', signature)


def test_destinations_are_declared_with_bounds_and_matched_by_key_pattern() -> None:
    hook = Webhook(name="ops", patterns=("reports/*",))
    assert hook.matches("reports/q3.csv") and not hook.matches("photos/a.jpg")
    for changes, why in (({"name": "Ops!"}, "webhook name"), ({"rate_limit": "fast"}, "rate_limit"), ({"max_attempts": 0}, "max_attempts")):
        with pytest.raises(TopologyError, match=why):
            dataclasses.replace(hook, **changes)
    with pytest.raises(TopologyError, match="webhook names repeat"):
        dataclasses.replace(TOPOLOGY, webhooks=(hook, hook))


def test_a_deployment_turns_a_webhook_on_with_its_url_and_secret() -> None:
    assert load_settings({}).webhook("notify") is None, "off by default"
    env = {"DROPQ_WEBHOOK_NOTIFY_URL": "https://hooks.example.com/dropq/", "DROPQ_WEBHOOK_NOTIFY_SECRET": SECRET}
    endpoint = load_settings(env).webhook("notify")
    assert endpoint is not None and (endpoint.url, endpoint.secret, endpoint.rate_limit) == (
        "https://hooks.example.com/dropq/",
        SECRET,
        None,
    )
    assert load_settings(load_settings(env).environment()).webhook("notify") == endpoint, "what workers get is what was set"
    with pytest.raises(ConfigError, match="DROPQ_WEBHOOK_NOTIFY_URL is set without DROPQ_WEBHOOK_NOTIFY_SECRET: webhooks are signed"):
        load_settings({"DROPQ_WEBHOOK_NOTIFY_URL": "https://hooks.example.com/"})
    with pytest.raises(ConfigError, match="is not an http"):
        load_settings({**env, "DROPQ_WEBHOOK_NOTIFY_URL": "ftp://hooks.example.com/"})
    with pytest.raises(ConfigError, match="RATE_LIMIT='lots'"):
        load_settings({**env, "DROPQ_WEBHOOK_NOTIFY_RATE_LIMIT": "lots"})


DESTINATION = "https://hooks.example.com"
# What a file may ask for below DESTINATION (no trailing slash), and the URL then called.
BELOW = {
    "https://hooks.example.com": "https://hooks.example.com/",
    "https://hooks.example.com/": "https://hooks.example.com/",
    "https://hooks.example.com/orders/42?tenant=7": "https://hooks.example.com/orders/42?tenant=7",
    "HTTPS://Hooks.Example.COM/x": "https://hooks.example.com/x",
    "https://hooks.example.com:443/x": "https://hooks.example.com/x",
    "https://hooks.example.com./x": "https://hooks.example.com/x",
    "https://hooks.example.com/%6frders": "https://hooks.example.com/orders",
    "https://hooks.example.com/caf%C3%A9": "https://hooks.example.com/caf%C3%A9",
}
# What no file may ask for: other hosts that start or end alike, userinfo, ports, schemes, dot segments (plain,
# encoded, with parameters), encoded separators, backslashes, whitespace, fragments, bad encodings and IDNA tricks.
HOSTILE = [
    "https://hooks.example.com.evil.net/x",
    "https://hooks.example.com@evil.net/",
    "https://user:pass@hooks.example.com/",
    "https://hooks.example.com:8443/x",
    "https://hooks.example.com:0/x",
    "https://hooks.example.com:99999/x",
    "http://hooks.example.com/x",
    "ftp://hooks.example.com/x",
    "//hooks.example.com/x",
    "hooks.example.com/x",
    "https://evilhooks.example.com/x",
    "https://hooks.example.co/x",
    "https://hooks.example.com/../admin",
    "https://hooks.example.com/a/../../admin",
    "https://hooks.example.com/%2e%2e/admin",
    "https://hooks.example.com/%2E%2E%2Fadmin",
    "https://hooks.example.com/..;/admin",
    "https://hooks.example.com/./x",
    "https://hooks.example.com/a%2fb",
    "https://hooks.example.com/a%5cb",
    "https://hooks.example.com\\@evil.net/",
    "https://hooks.example.com/\\..\\admin",
    "https://hooks.example.com /x",
    "https://hooks.example.com/x\r\nHost: evil.net",
    "https://hooks.example.com/x#frag",
    "https://hooks.example.com/%ff",
    "https://hooks.example.com%2eevil.net/",
    "https://hooks．example．com.evil.net/",
    "https://169.254.169.254/latest/meta-data/",
    "",
]


@pytest.mark.parametrize(("asked", "called"), BELOW.items())
def test_a_url_below_the_destination_is_called_as_checked(asked: str, called: str) -> None:
    assert below(DESTINATION, asked) == called


@pytest.mark.parametrize("asked", HOSTILE)
def test_no_url_outside_the_destination_is_ever_called(asked: str) -> None:
    assert below(DESTINATION, asked) is None


def test_a_destination_with_a_path_admits_only_what_lies_below_it_at_a_slash() -> None:
    destination = "https://hooks.example.com/dropq/"
    assert below(destination, "https://hooks.example.com/dropq") == "https://hooks.example.com/dropq"
    assert below(destination, "https://hooks.example.com/dropq/a/b") == "https://hooks.example.com/dropq/a/b"
    for asked in ("https://hooks.example.com/dropqx", "https://hooks.example.com/", "https://hooks.example.com/dropq/../x"):
        assert below(destination, asked) is None, asked
    # An IDNA host is compared in its ASCII form, whichever form the file writes.
    assert below("https://bücher.example/", "https://xn--bcher-kva.example/x") == "https://bücher.example/x"
    assert below("https://xn--bcher-kva.example/", "https://BÜCHER.example/x") == "https://xn--bcher-kva.example/x"

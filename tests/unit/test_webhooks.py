"""Webhook signatures, destinations and their settings."""

from __future__ import annotations

import dataclasses

import pytest

from dropq.errors import ConfigError
from dropq.settings import load_settings
from dropq.webhooks import sign, verify
from infra.topology import TOPOLOGY, TopologyError, Webhook

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

"""Webhooks: a file's outcome POSTed, signed, to the URL its metadata names; retried, rate limited, given up with a reason."""

from __future__ import annotations

import json
import uuid

import pytest

from dropq.ledger import ledger_for
from dropq.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from infra.local.cloud import LocalCloud
from tests.conftest import TEST_WEBHOOK_RATE, TEST_WEBHOOK_SECRET, wait_for, wait_for_outcome
from tests.webhook_server import WebhookReceiver

pytestmark = pytest.mark.e2e


def drop_with_webhook(cloud: LocalCloud, key: str, body: bytes, webhook: str) -> None:
    s3 = cloud.settings.client("s3")
    s3.put_object(Bucket=cloud.settings.bucket, Key=key, Body=body, Metadata={"dropq-webhook": webhook})


def webhook_of(cloud: LocalCloud, key: str, timeout: float = 60) -> dict:
    ledger = ledger_for(cloud.settings)
    return wait_for(lambda: (ledger.get(cloud.settings.bucket, key) or {}).get("webhook"), timeout, f"the webhook of {key}")


def test_a_success_is_posted_signed_and_retried_through_server_errors(
    workloads_cloud: LocalCloud, webhook_receiver: WebhookReceiver
) -> None:
    key, path = "incoming/hooks/ok.txt", f"/fail-2/{uuid.uuid4().hex}"
    drop_with_webhook(workloads_cloud, key, b"hello", f"{webhook_receiver.url}{path}")

    entry = wait_for_outcome(ledger_for(workloads_cloud.settings), workloads_cloud.settings.bucket, key)
    webhook = webhook_of(workloads_cloud, key)

    assert (webhook["name"], webhook["state"], webhook["status"], webhook["attempts"]) == ("notify", "delivered", 200, 3)
    requests = webhook_receiver.received(path)
    assert [r.status for r in requests] == [503, 503, 200]
    assert len({r.headers[DELIVERY_HEADER] for r in requests}) == 1, "one delivery id across its attempts"
    last = requests[-1]
    assert verify(TEST_WEBHOOK_SECRET, last.headers[TIMESTAMP_HEADER], last.body, last.headers[SIGNATURE_HEADER])
    payload = json.loads(last.body)
    assert (payload["event"], payload["key"], payload["etag"], payload["outputs"]) == ("file.succeeded", key, entry["sk"], entry["outputs"])


def test_a_failure_is_posted_and_a_destination_that_keeps_failing_is_given_up_with_the_reason(
    workloads_cloud: LocalCloud, webhook_receiver: WebhookReceiver
) -> None:
    key, path = "incoming/hooks/empty.txt", f"/always-500/{uuid.uuid4().hex}"
    drop_with_webhook(workloads_cloud, key, b"", f"{webhook_receiver.url}{path}")

    webhook = webhook_of(workloads_cloud, key, timeout=120)

    attempts = webhook_receiver.received(path)
    assert len(attempts) == 5 and (webhook["state"], webhook["attempts"]) == ("failed", 5)
    assert webhook["reason"] == "gave up after 5 attempts: 500 Internal Server Error"
    payload = json.loads(attempts[0].body)
    assert (payload["event"], payload["reason"]) == ("file.failed", "the file is empty (0 bytes): there is nothing to process")


def test_deliveries_to_one_destination_are_rate_limited(workloads_cloud: LocalCloud, webhook_receiver: WebhookReceiver) -> None:
    batch = uuid.uuid4().hex
    keys = [f"incoming/hooks/rate-{i}.txt" for i in range(8)]
    for i, key in enumerate(keys):
        drop_with_webhook(workloads_cloud, key, f"file {i}".encode(), f"{webhook_receiver.url}/rate/{batch}/{i}")
    for key in keys:
        assert webhook_of(workloads_cloud, key)["state"] == "delivered"
    times = sorted(r.at for r in webhook_receiver.requests if r.path.startswith(f"/rate/{batch}/"))
    assert len(times) == len(keys)
    # Celery's token bucket lets one through every 1/rate s: 8 deliveries take at least 7/rate s (allowing for jitter).
    assert times[-1] - times[0] >= 0.8 * (len(keys) - 1) / TEST_WEBHOOK_RATE


def test_a_url_outside_the_declared_destinations_is_never_called(workloads_cloud: LocalCloud, webhook_receiver: WebhookReceiver) -> None:
    # Given the declared destination (the receiver, at http://127.0.0.1:<port>/) and another server beside it
    other = WebhookReceiver().start()
    try:
        port, host = webhook_receiver.url.rsplit(":", 1)[1], "127.0.0.1"
        hostile = {
            "metadata-service": "http://169.254.169.254/latest/meta-data/",
            "suffix-host": f"http://{host}.nip.io:{port}/suffix",
            "userinfo": f"http://{host}:{port}@{host}:{other.url.rsplit(':', 1)[1]}/userinfo",
            "credentials": f"http://user:secret@{host}:{port}/credentials",
            "other-port": f"{other.url}/other-port",
            "other-name": f"http://localhost:{port}/other-name",
            "escape": f"{webhook_receiver.url}/a/../../escape",
            "encoded-escape": f"{webhook_receiver.url}/%2e%2e/encoded-escape",
            "https-for-http": f"https://{host}:{port}/https",
        }
        keys = {name: f"incoming/hooks/hostile-{name}.txt" for name in hostile}
        # When files ask for each of those URLs in their metadata
        for name, url in hostile.items():
            drop_with_webhook(workloads_cloud, keys[name], b"x", url)
        # Then each is refused with the reason, and neither server is ever called for any of them
        for key in keys.values():
            webhook = webhook_of(workloads_cloud, key)
            assert webhook["state"] == "failed" and webhook["attempts"] == 0, (key, webhook)
            assert webhook["reason"].startswith("its metadata asks for a webhook that is not a destination of this deployment")
        marks = ("suffix", "userinfo", "credentials", "other-", "escape", "https")
        called = [r.path for r in webhook_receiver.requests + other.requests]
        assert not [path for path in called if any(mark in path for mark in marks)]
        assert other.requests == []
    finally:
        other.stop()

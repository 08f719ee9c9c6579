"""One webhook POST against a real local HTTP server: signed, and sorted into delivered, retried or refused."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from dropq.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tasks.webhooks import post
from tests.webhook_server import WebhookReceiver

SECRET = "integration-secret"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(slow_seconds=2).start()
    yield server
    server.stop()


def test_a_delivered_post_is_signed_json_with_its_delivery_id(receiver: WebhookReceiver) -> None:
    attempt = post(f"{receiver.url}/ok/1", {"event": "file.succeeded", "key": "incoming/a.jpg"}, SECRET, 5, "delivery-1")
    assert (attempt.delivered, attempt.status, attempt.detail) == (True, 200, "200 OK")
    (request,) = receiver.received("/ok/1")
    assert json.loads(request.body) == {"event": "file.succeeded", "key": "incoming/a.jpg"}
    assert request.headers[DELIVERY_HEADER] == "delivery-1"
    assert verify(SECRET, request.headers[TIMESTAMP_HEADER], request.body, request.headers[SIGNATURE_HEADER])


def test_server_errors_and_timeouts_are_retried_and_other_refusals_are_not(receiver: WebhookReceiver) -> None:
    failing = post(f"{receiver.url}/fail-1/x", {}, SECRET, 5, "d")
    assert (failing.delivered, failing.retry, failing.detail) == (False, True, "503 Service Unavailable")
    assert post(f"{receiver.url}/fail-1/x", {}, SECRET, 5, "d").delivered, "the second attempt gets through"
    slow = post(f"{receiver.url}/slow/x", {}, SECRET, 0.5, "d")
    assert (slow.delivered, slow.retry, slow.detail) == (False, True, "no answer within 0.5s")
    closed = post("http://127.0.0.1:9/nothing-listens", {}, SECRET, 1, "d")
    assert (closed.delivered, closed.retry) == (False, True) and closed.detail.startswith("could not connect")


def test_a_client_error_is_a_refusal_that_is_not_retried(receiver: WebhookReceiver) -> None:
    refused = post(f"{receiver.url}/refuse-404/x", {}, SECRET, 5, "d")
    assert (refused.delivered, refused.retry, refused.status) == (False, False, 404)

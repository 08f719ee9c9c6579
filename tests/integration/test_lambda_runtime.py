"""The local Lambda runtime keeps S3's async-invoke contract: retries, then the on-failure destination."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dropq.settings import Settings
from infra.local.lambda_runtime import LocalLambda
from tests.conftest import load_event, wait_for


@contextmanager
def delivering_one_event(settings: Settings, name: str, handler: Any) -> Iterator[tuple[str, str]]:
    """Run a LocalLambda around `handler` with one S3 event queued; yield (events URL, failures URL), then stop it."""
    sqs = settings.client("sqs")
    events = sqs.create_queue(QueueName=f"{name}-events")["QueueUrl"]
    failures = sqs.create_queue(QueueName=f"{name}-failures")["QueueUrl"]
    sqs.send_message(QueueUrl=events, MessageBody=json.dumps(load_event("s3_put.json")))
    runtime = LocalLambda(handler, sqs, events, failures, retries=2)
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    try:
        yield events, failures
    finally:
        runtime.stop()
        thread.join(10)


def test_a_failing_event_is_retried_twice_then_sent_to_the_failure_destination(moto_settings: Settings) -> None:
    calls: list[dict[str, Any]] = []

    def broken(event: dict[str, Any], context: Any) -> None:
        calls.append(event)
        raise RuntimeError("queue is unreachable")

    sqs = moto_settings.client("sqs")
    with delivering_one_event(moto_settings, "always-fails", broken) as (events, failures):
        received = wait_for(lambda: sqs.receive_message(QueueUrl=failures, WaitTimeSeconds=1).get("Messages"), 30, "the failure record")
    record = json.loads(received[0]["Body"])
    assert len(calls) == 3
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responsePayload"] == {"errorMessage": "queue is unreachable", "errorType": "RuntimeError"}
    assert record["requestPayload"] == load_event("s3_put.json")
    assert sqs.get_queue_attributes(QueueUrl=events, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_a_flaky_handler_succeeds_on_retry_and_the_event_is_consumed(moto_settings: Settings) -> None:
    calls: list[str] = []

    def flaky(event: dict[str, Any], context: Any) -> None:
        calls.append(context.aws_request_id)
        if len(calls) == 1:
            raise TimeoutError("first call times out")

    sqs = moto_settings.client("sqs")
    with delivering_one_event(moto_settings, "flaky", flaky) as (events, failures):
        wait_for(lambda: len(calls) == 2, 20, "the retry")
    attributes = sqs.get_queue_attributes(QueueUrl=events, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")
    assert "Messages" not in sqs.receive_message(QueueUrl=failures, WaitTimeSeconds=0)

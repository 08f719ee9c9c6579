"""The local Lambda runtime keeps S3's async-invoke contract: retries, then the on-failure destination."""

from __future__ import annotations

import json
import threading
from typing import Any

from dropq.settings import Settings
from infra.local.lambda_runtime import LocalLambda
from tests.conftest import load_event, wait_for


def _runtime(settings: Settings, name: str, handler: Any) -> tuple[LocalLambda, str, str]:
    sqs = settings.client("sqs")
    events = sqs.create_queue(QueueName=f"{name}-events")["QueueUrl"]
    failures = sqs.create_queue(QueueName=f"{name}-failures")["QueueUrl"]
    return LocalLambda(handler, sqs, events, failures, retries=2), events, failures


def _run(runtime: LocalLambda) -> threading.Thread:
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    return thread


def test_a_failing_event_is_retried_twice_then_sent_to_the_failure_destination(moto_settings: Settings) -> None:
    calls: list[dict[str, Any]] = []

    def broken(event: dict[str, Any], context: Any) -> None:
        calls.append(event)
        raise RuntimeError("queue is unreachable")

    runtime, events, failures = _runtime(moto_settings, "always-fails", broken)
    sqs = moto_settings.client("sqs")
    sqs.send_message(QueueUrl=events, MessageBody=json.dumps(load_event("s3_put.json")))
    thread = _run(runtime)
    try:
        received = wait_for(lambda: sqs.receive_message(QueueUrl=failures, WaitTimeSeconds=1).get("Messages"), 30, "the failure record")
    finally:
        runtime.stop()
        thread.join(10)
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

    runtime, events, failures = _runtime(moto_settings, "flaky", flaky)
    sqs = moto_settings.client("sqs")
    sqs.send_message(QueueUrl=events, MessageBody=json.dumps(load_event("s3_put.json")))
    thread = _run(runtime)
    try:
        wait_for(lambda: len(calls) == 2, 20, "the retry")
    finally:
        runtime.stop()
        thread.join(10)
    attributes = sqs.get_queue_attributes(QueueUrl=events, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")
    assert "Messages" not in sqs.receive_message(QueueUrl=failures, WaitTimeSeconds=0)

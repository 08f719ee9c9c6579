"""The local Lambda runtime keeps Lambda's contracts: an event source mapping's batches and partial batch responses, and an
asynchronous invocation's retries, then its on-failure destination."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dropq.settings import Settings
from infra.local.lambda_runtime import EventSourceMapping, LocalLambda
from tests.conftest import load_event, wait_for


@contextmanager
def delivering_one_event(settings: Settings, name: str, handler: Any) -> Iterator[tuple[str, str]]:
    """Run a LocalLambda around `handler` with one S3 event queued; yield (events URL, failures URL), then stop it."""
    sqs = settings.client("sqs")
    events = sqs.create_queue(QueueName=f"{name}-events")["QueueUrl"]
    failures = sqs.create_queue(QueueName=f"{name}-failures")["QueueUrl"]
    sqs.send_message(QueueUrl=events, MessageBody=json.dumps(load_event("s3_put.json")))
    with running(LocalLambda(handler, sqs, events, failures, retries=2)):
        yield events, failures


@contextmanager
def running(runtime: LocalLambda | EventSourceMapping) -> Iterator[None]:
    """Run a runtime's loop in a thread meanwhile; then stop it and wait for it."""
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    try:
        yield
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


# The event source mapping: the inbox events queue's messages to the handler in batches, with partial batch responses.


@contextmanager
def mapping_over(settings: Settings, name: str, handler: Any, bodies: list[str], batch_size: int = 10) -> Iterator[tuple[str, str]]:
    """Run an EventSourceMapping over a queue holding `bodies` (redriven to a DLQ after 2 receives, back after 1 s);
    yield (queue URL, DLQ URL), then stop it."""
    sqs = settings.client("sqs")
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    queue = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1", "RedrivePolicy": redrive})["QueueUrl"]
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    with running(EventSourceMapping(handler, sqs, queue, batch_size=batch_size, concurrency=1)):
        yield queue, dlq


def _counts(sqs: Any, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_a_batch_comes_as_lambdas_sqs_records_and_the_messages_it_names_come_back_until_they_are_parked(
    moto_settings: Settings,
) -> None:
    batches: list[list[dict[str, Any]]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        batches.append(event["Records"])
        assert context.get_remaining_time_in_millis() > 0
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"]}

    sqs = moto_settings.client("sqs")
    bodies = [f"good {i}" for i in range(9)] + ["bad"]
    with mapping_over(moto_settings, "esm-partial", handler, bodies) as (queue, dlq):
        wait_for(lambda: _counts(sqs, dlq)[0] == 1, 30, "the failing message in the DLQ")
        wait_for(lambda: _counts(sqs, queue) == (0, 0), 10, "the queue empty")
    first = batches[0]
    assert len(first) == 10, "ten ready messages make one batch"
    assert {r["eventSource"] for r in first} == {"aws:sqs"} and all(r["eventSourceARN"].endswith(":esm-partial") for r in first)
    assert {r["body"] for r in first} == set(bodies) and all(r["attributes"]["ApproximateReceiveCount"] == "1" for r in first)
    later = [r for batch in batches[1:] for r in batch]
    assert [r["body"] for r in later] == ["bad"], "only the named message came back"
    assert later[0]["attributes"]["ApproximateReceiveCount"] == "2"
    (parked,) = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1)["Messages"]
    assert parked["Body"] == "bad"


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("raises", RuntimeError("the ledger is down")),
        ("unknown-id", {"batchItemFailures": [{"itemIdentifier": "no-such-message"}]}),
        ("empty-id", {"batchItemFailures": [{"itemIdentifier": ""}]}),
        ("not-a-list", {"batchItemFailures": "all of them"}),
    ],
)
def test_a_failed_invocation_or_an_invalid_response_brings_the_whole_batch_back(moto_settings: Settings, name: str, answer: Any) -> None:
    calls: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        calls.append(len(event["Records"]))
        if isinstance(answer, Exception):
            raise answer
        return answer

    sqs = moto_settings.client("sqs")
    with mapping_over(moto_settings, f"esm-{name}", handler, ["a", "b", "c"]) as (_, dlq):
        wait_for(lambda: _counts(sqs, dlq)[0] == 3, 30, "the whole batch parked after two receives")
    assert calls[:2] == [3, 3]


def test_with_a_smaller_batch_size_batches_are_that_size(moto_settings: Settings) -> None:
    sizes: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        sizes.append(len(event["Records"]))

    sqs = moto_settings.client("sqs")
    with mapping_over(moto_settings, "esm-small", handler, [str(i) for i in range(7)], batch_size=3) as (queue, _):
        wait_for(lambda: _counts(sqs, queue) == (0, 0), 20, "every message handled")
    assert sum(sizes) == 7 and max(sizes) == 3

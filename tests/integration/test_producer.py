"""The producer against a moto server: routing, batching, the ledger, and the handler entry point."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import Counter
from typing import Any

import pytest

from dropq.enqueue import enqueue_objects
from dropq.ledger import ledger_for
from dropq.protocol import decode_task_message
from dropq.settings import Settings
from lambdas.producer import handler as handler_module
from lambdas.producer.events import parse_s3_event
from tests.conftest import drain, load_event, purge_queues


def _count_calls(client: Any) -> Counter[str]:
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.sqs", lambda model, **_: calls.update([model.name]))
    return calls


def test_an_event_with_several_records_is_sent_in_one_batch(moto_settings: Settings) -> None:
    purge_queues(moto_settings)
    sqs = moto_settings.client("sqs")
    calls = _count_calls(sqs)
    objects = parse_s3_event(load_event("s3_mixed.json"), moto_settings.topology).objects

    enqueued = enqueue_objects(objects, moto_settings, sqs=sqs).enqueued

    assert calls == Counter({"SendMessageBatch": 1})
    messages = [decode_task_message(m["Body"]) for m in drain(moto_settings, "default")]
    assert sorted((m["body"]["kwargs"]["key"], m["body"]["kwargs"]["pipeline"]) for m in messages) == [
        ("incoming/a.csv", "tables"),
        ("incoming/b.png", "images"),
        ("incoming/日本/data.JSONL", "tables"),
    ]
    assert {m["headers"]["id"] for m in messages} == {e.task_id for e in enqueued}


def test_more_than_ten_records_take_several_batches(moto_settings: Settings) -> None:
    purge_queues(moto_settings)
    sqs = moto_settings.client("sqs")
    calls = _count_calls(sqs)
    (template,) = parse_s3_event(load_event("s3_put.json"), moto_settings.topology).objects
    objects = tuple(dataclasses.replace(template, key=f"incoming/many/{i}.jpg", etag=f"e{i}") for i in range(23))

    enqueue_objects(objects, moto_settings, sqs=sqs)

    assert calls == Counter({"SendMessageBatch": 3})
    assert len(drain(moto_settings, "default")) == 23


def test_the_producer_writes_nothing_to_the_ledger_and_a_repeated_event_is_caught_at_the_claim(moto_settings: Settings) -> None:
    purge_queues(moto_settings)
    ledger = ledger_for(moto_settings)
    sqs = moto_settings.client("sqs")
    (ref,) = parse_s3_event(load_event("s3_put.json"), moto_settings.topology).objects
    ref = dataclasses.replace(ref, key=f"incoming/ledger-check-{uuid.uuid4().hex[:8]}.jpg")

    (item,) = enqueue_objects((ref,), moto_settings, sqs=sqs).enqueued
    assert ledger.get(ref.bucket, ref.key) is None, "no write before the claim: the claim creates the entry"

    claim = ledger.claim(ref, "images", item.task_id, worker="w", lease_seconds=30)
    assert claim.acquired and claim.owner
    assert ledger.mark_succeeded(ref, claim.owner, ["processed/x"], 5, "0" * 64)
    # S3 delivers the event again: a message is sent, and its claim finds the file done
    (repeat,) = enqueue_objects((ref,), moto_settings, sqs=sqs).enqueued
    assert len(drain(moto_settings, "default")) == 2
    skipped = ledger.claim(ref, "images", repeat.task_id, worker="w", lease_seconds=30)
    assert (skipped.acquired, skipped.state) == (False, "succeeded")


def test_the_handler_reads_its_settings_from_the_environment(moto_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    purge_queues(moto_settings)
    for name, value in moto_settings.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handler_module, "_settings", None)

    assert handler_module.handler(load_event("s3_mixed.json"), None) == {"enqueued": 3, "ignored": 3}
    assert handler_module.handler(load_event("s3_test_event.json"), None) == {"enqueued": 0, "ignored": 0}
    assert len(drain(moto_settings, "default")) == 3


# The producer's event source, as Lambda's event source mapping hands it over: S3's notifications received from the inbox
# events queue, in a batch (infra/local/lambda_runtime.py builds the records as Lambda does).


@pytest.fixture
def batch_settings(moto_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Settings:
    """A deployment of its own (its own queues, ledger and bucket notification) that the handler reads from the environment."""
    from infra.local.provision import provision

    settings = dataclasses.replace(moto_settings, prefix=f"b{uuid.uuid4().hex[:6]}-")
    provision(settings)
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handler_module, "_settings", None)
    return settings


def _received_batch(settings: Settings, count: int) -> dict[str, Any]:
    """`count` messages of the inbox events queue, as the event Lambda invokes the producer with."""
    from infra.local.lambda_runtime import sqs_record

    sqs, url = settings.client("sqs"), settings.queue_url(settings.topology.inbox_events.queue)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages: list[dict[str, Any]] = []
    while len(messages) < count:
        messages += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, count - len(messages)), WaitTimeSeconds=1).get(
            "Messages", []
        )
    return {"Records": [sqs_record(m, arn, settings.region) for m in messages]}


def test_a_batch_of_s3_notifications_is_sent_together_none_comes_back_and_the_ledger_is_not_touched(batch_settings: Settings) -> None:
    s3 = batch_settings.client("s3")
    drain(batch_settings, batch_settings.topology.inbox_events.queue)  # S3's test event, sent when the notification was set
    for i in range(10):
        s3.put_object(Bucket=batch_settings.bucket, Key=f"incoming/batch/{i}.txt", Body=f"file {i}".encode())
    event = _received_batch(batch_settings, 10)
    handler_module._cold_start()
    calls = _count_calls(handler_module._clients["sqs"])

    assert handler_module.handler(event, None) == {"batchItemFailures": []}

    assert calls == Counter({"SendMessageBatch": 1}), "ten files to one queue: one send"
    messages = [decode_task_message(m["Body"])["body"]["kwargs"]["key"] for m in drain(batch_settings, "default")]
    assert sorted(messages) == [f"incoming/batch/{i}.txt" for i in range(10)]
    ledger = ledger_for(batch_settings)
    assert all(ledger.get(batch_settings.bucket, key) is None for key in messages), "the claims create the entries"
    assert "ledger" not in handler_module._clients, "the producer has no DynamoDB client"


def test_only_the_notifications_that_failed_come_back_and_a_test_event_or_a_repeat_is_no_failure(batch_settings: Settings) -> None:
    sqs, inbox = batch_settings.client("sqs"), batch_settings.queue_url(batch_settings.topology.inbox_events.queue)
    drain(batch_settings, batch_settings.topology.inbox_events.queue)
    small = load_event("s3_put.json")
    large = json.loads(json.dumps(small))
    large["Records"][0]["s3"]["object"].update(key="incoming/huge.jpg", size=32 * 1024 * 1024, eTag="e-huge")
    bodies = {
        "small": json.dumps(small),
        "repeat": json.dumps(small),
        "large": json.dumps(large),
        "test event": json.dumps(load_event("s3_test_event.json")),
        "poison": "this is no S3 notification",
    }
    ids = {name: sqs.send_message(QueueUrl=inbox, MessageBody=body)["MessageId"] for name, body in bodies.items()}
    # The heavy queue, where a 32 MiB image goes, is gone: SQS refuses its send
    sqs.delete_queue(QueueUrl=batch_settings.queue_url("heavy"))
    event = _received_batch(batch_settings, len(bodies))

    response = handler_module.handler(event, None)

    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted([ids["large"], ids["poison"]])
    (message,) = drain(batch_settings, "default")
    assert decode_task_message(message["Body"])["body"]["kwargs"]["key"] == "incoming/holiday photos/café (1).jpg"
    # Once the queue is back, the notification that came back is enqueued
    from infra.local.provision import provision_queues

    provision_queues(sqs, batch_settings)
    retried = {"Records": [r for r in event["Records"] if r["messageId"] == ids["large"]]}
    assert handler_module.handler(retried, None) == {"batchItemFailures": []}
    (heavy,) = drain(batch_settings, "heavy")
    assert decode_task_message(heavy["Body"])["body"]["kwargs"]["key"] == "incoming/huge.jpg"

"""The producer against a moto server: routing, batching, the ledger, and the handler entry point."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest

from dropq.ledger import ledger_for
from dropq.protocol import decode_task_message
from dropq.settings import Settings
from lambdas.producer import handler as handler_module
from lambdas.producer.enqueue import enqueue_objects
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

    enqueued = enqueue_objects(objects, moto_settings, sqs=sqs, ledger=ledger_for(moto_settings))

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

    enqueue_objects(objects, moto_settings, sqs=sqs, ledger=ledger_for(moto_settings))

    assert calls == Counter({"SendMessageBatch": 3})
    assert len(drain(moto_settings, "default")) == 23


def test_enqueued_files_are_queued_in_the_ledger_and_not_requeued_once_done(moto_settings: Settings) -> None:
    purge_queues(moto_settings)
    ledger = ledger_for(moto_settings)
    sqs = moto_settings.client("sqs")
    (ref,) = parse_s3_event(load_event("s3_put.json"), moto_settings.topology).objects
    ref = dataclasses.replace(ref, key="incoming/ledger-check.jpg")

    (item,) = enqueue_objects((ref,), moto_settings, sqs=sqs, ledger=ledger)
    entry = ledger.get(ref.bucket, ref.key)
    assert entry is not None
    assert (entry["state"], entry["pipeline"], entry["queue"], entry["task_id"]) == ("queued", "images", "default", item.task_id)

    claim = ledger.claim(ref, "images", item.task_id, worker="w", lease_seconds=30)
    assert claim.acquired and claim.owner
    assert ledger.mark_succeeded(ref, claim.owner, ["processed/x"], 5, "0" * 64)
    assert enqueue_objects((ref,), moto_settings, sqs=sqs, ledger=ledger) == []
    assert len(drain(moto_settings, "default")) == 1


def test_the_handler_reads_its_settings_from_the_environment(moto_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    purge_queues(moto_settings)
    for name, value in moto_settings.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handler_module, "_settings", None)

    assert handler_module.handler(load_event("s3_mixed.json"), None) == {"enqueued": 3, "ignored": 3}
    assert handler_module.handler(load_event("s3_test_event.json"), None) == {"enqueued": 0, "ignored": 0}
    assert len(drain(moto_settings, "default")) == 3

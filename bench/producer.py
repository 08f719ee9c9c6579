"""Producer cost: SQS requests per S3 record, and S3 records per second the handler sustains.

The real handler (lambdas/producer/handler.py) is called in this process against the bench's moto server, as Lambda
would call it: on S3 events of one record (what S3 sends when it invokes a function), and on batches from the inbox
events queue, each message one S3 event (what the stack's event source mapping sends).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch

from dropq.observe import PRODUCER
from dropq.settings import Settings
from infra.local.server import MotoServer, recorded_actions


@dataclass(frozen=True)
class ProducerCost:
    """What handling `records` S3 records cost, `per_event` records an event."""

    per_event: int
    records: int
    seconds: float
    requests: Counter[tuple[str, str]]
    # Whether the events were batches of the inbox events queue (else S3 events, each its records).
    batched: bool = False

    @property
    def events_per_second(self) -> float:
        return self.records / self.per_event / self.seconds

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds

    @property
    def invocations_per_record(self) -> float:
        return 1 / self.per_event

    def per_record(self, service: str) -> float:
        return sum(n for (s, _), n in self.requests.items() if s == service) / self.records


def s3_record(bucket: str, key: str) -> dict[str, Any]:
    """One ObjectCreated record, as S3 sends it."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T00:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": key, "size": 1024, "eTag": uuid.uuid4().hex, "sequencer": "0055AED6DCD90281E5"},
        },
    }


@contextmanager
def lines_to(path: Path) -> Iterator[None]:
    """The producer's JSON lines go to `path` meanwhile (their cost is measured), as Lambda's go to CloudWatch, not the terminal."""
    writers = [h for h in logging.getLogger(PRODUCER).handlers if isinstance(h, logging.StreamHandler)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        before = [writer.stream for writer in writers]
        for writer in writers:
            writer.setStream(log)
        try:
            yield
        finally:
            for writer, stream in zip(writers, before, strict=True):
                writer.setStream(stream)


def queue_batch(s3_events: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch of the inbox events queue, one message per S3 event, as Lambda's event source mapping passes it."""
    from infra.local.lambda_runtime import sqs_record

    messages = [
        {"MessageId": str(uuid.uuid4()), "ReceiptHandle": uuid.uuid4().hex, "Body": json.dumps(e), "Attributes": {}} for e in s3_events
    ]
    return {"Records": [sqs_record(m, "arn:aws:sqs:us-east-1:123456789012:dropq-inbox-events", "us-east-1") for m in messages]}


def measure(settings: Settings, server: MotoServer, records: int, per_event: int, batched: bool = False) -> ProducerCost:
    """Call the handler on `records` records, `per_event` to an event (an S3 event's records, or, `batched`, a queue
    batch's messages of one record each); count the requests at the server."""
    # The handler reads its settings at its cold start; the environment is given back as it was after.
    with patch.dict(os.environ, settings.environment()):
        from lambdas.producer.handler import handler

        bucket, inbox, run = settings.topology.bucket, settings.topology.inbox_prefix, uuid.uuid4().hex[:6]
        keys = [[f"{inbox}producer-{run}/{e:05d}-{r}.jpg" for r in range(per_event)] for e in range(records // per_event)]
        if batched:
            events = [queue_batch([{"Records": [s3_record(bucket, key)]} for key in event]) for event in keys]
        else:
            events = [{"Records": [s3_record(bucket, key) for key in event]} for event in keys]
        assert server.record_to is not None
        with lines_to(Path(settings.state_dir) / "producer.log"):
            handler(events[0], None)  # cold start outside the measurement
            server.reset_recording()
            started = time.monotonic()
            for event in events[1:]:
                response = handler(event, None)
                assert not (response or {}).get("batchItemFailures"), response
            seconds = time.monotonic() - started
    measured = records - per_event
    return ProducerCost(per_event, measured, seconds, recorded_actions(server.record_to), batched)


def measure_shapes(
    settings: Settings, server: MotoServer, records: int, shapes: tuple[tuple[int, bool], ...], rounds: int = 5
) -> list[ProducerCost]:
    """Each shape (`per_event`, `batched`) on `records` records in all, measured in `rounds` interleaved slices, the order
    turning each round: moto slows down as its tables grow, and every shape must see the same server."""
    slices: dict[tuple[int, bool], list[ProducerCost]] = {shape: [] for shape in shapes}
    for turn in range(rounds):
        for shape in shapes[turn % len(shapes) :] + shapes[: turn % len(shapes)]:
            per_event, batched = shape
            share = max(2 * per_event, records // rounds // per_event * per_event)
            slices[shape].append(measure(settings, server, share, per_event, batched))
    return [
        ProducerCost(
            per_event=per_event,
            records=sum(c.records for c in costs),
            seconds=sum(c.seconds for c in costs),
            requests=sum((c.requests for c in costs), Counter()),
            batched=batched,
        )
        for (per_event, batched), costs in slices.items()
    ]

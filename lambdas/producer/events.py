"""Parse S3 event notifications, as S3 sends them or in a batch from the inbox events queue, into the objects the producer
must enqueue (pure functions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, SQSEvent

from dropq.objects import ObjectRef
from dropq.topology import Topology


@dataclass(frozen=True)
class ParsedEvent:
    """What an S3 event asks for: objects to enqueue, and a count of records ignored."""

    objects: tuple[ObjectRef, ...]
    ignored: int


def is_test_event(event: dict[str, Any]) -> bool:
    """Whether this is the s3:TestEvent S3 sends when a notification is configured."""
    return event.get("Event") == "s3:TestEvent"


def parse_s3_event(event: dict[str, Any], topology: Topology) -> ParsedEvent:
    """The created objects below the inbox prefix; anything else (test events, deletions, outputs) is ignored."""
    if is_test_event(event) or "Records" not in event:
        return ParsedEvent(objects=(), ignored=0)
    objects: list[ObjectRef] = []
    ignored = 0
    for record in S3Event(event).records:
        if record.event_source != "aws:s3" or not record.event_name.startswith("ObjectCreated:"):
            ignored += 1
            continue
        s3_object = record.s3.get_object
        # The one place dropq decodes an S3 key: notifications carry keys form-encoded ("a+b%C3%BC").
        key = unquote_plus(s3_object.key)
        if not topology.is_inbox_key(key, s3_object.size):
            ignored += 1
            continue
        objects.append(
            ObjectRef(
                bucket=record.s3.bucket.name,
                key=key,
                etag=s3_object.etag.strip('"'),
                size=s3_object.size,
                version_id=s3_object.version_id,
            )
        )
    return ParsedEvent(objects=tuple(objects), ignored=ignored)


@dataclass(frozen=True)
class Notification:
    """One message of the inbox events queue: S3's notification in it, parsed, or why it cannot be."""

    message_id: str
    parsed: ParsedEvent
    problem: str | None = None


def is_queue_batch(event: dict[str, Any]) -> bool:
    """Whether Lambda's event source mapping invoked the producer with a batch of SQS messages."""
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and isinstance(records, list) and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)


def parse_queue_batch(event: dict[str, Any], topology: Topology) -> list[Notification]:
    """Each SQS message of a batch, with the S3 notification its body carries; a body that is none says why."""
    notifications = []
    for record in SQSEvent(event).records:
        try:
            body = json.loads(record.body)
            if not isinstance(body, dict) or not (is_test_event(body) or isinstance(body.get("Records"), list)):
                raise ValueError("no Records")
            notifications.append(Notification(record.message_id, parse_s3_event(body, topology)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            problem = f"not an S3 event notification ({type(exc).__name__}: {exc})"
            notifications.append(Notification(record.message_id, ParsedEvent(objects=(), ignored=0), problem))
    return notifications

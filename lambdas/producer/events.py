"""Parse S3 event notifications into the objects the producer must enqueue (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event

from dropq.objects import ObjectRef
from infra.topology import Topology


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
        if not topology.is_inbox_key(key):
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

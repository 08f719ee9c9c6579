"""Starting a file in parts: whether its pipeline splits, the plan of its parts, and the chord of `dropq.part` tasks
with their `dropq.combine` callback, sent by name (tasks/parts.py runs them)."""

from __future__ import annotations

import time
from typing import Any

from celery import chord

from dropq.objects import ObjectRef
from tasks.app import app
from tasks.pipelines import PIPELINES, Split
from tasks.storage import aws_errors

PART_TASK = "dropq.part"
COMBINE_TASK = "dropq.combine"


def split_of(pipeline: str) -> Split | None:
    """The pipeline's Split, if it is one."""
    found = PIPELINES.get(pipeline)
    return found if isinstance(found, Split) else None


def read_range(s3: Any, ref: ObjectRef, start: int, end: int) -> bytes:
    """Bytes [start, end) of the exact object version the event announced (a ranged GET)."""
    if start >= end:
        return b""
    with aws_errors(f"reading bytes {start}..{end} of {ref.uri}"):
        response = s3.get_object(Bucket=ref.bucket, Key=ref.key, IfMatch=f'"{ref.etag}"', Range=f"bytes={start}-{end - 1}")
        return response["Body"].read()


def plan(split: Split, ref: ObjectRef, s3: Any) -> list[dict[str, Any]]:
    """The parts of a file; one part means it runs whole, in the task that claimed it."""
    return split.plan(ref, lambda start, end: read_range(s3, ref, start, end))


def start(ref: ObjectRef, pipeline: str, parts: list[dict[str, Any]], owner: str, queue: str) -> str:
    """Send the parts and their callback; return the chord's group id."""
    fields = ref.to_dict()
    header = [
        app.signature(PART_TASK, kwargs={**fields, "pipeline": pipeline, "index": i, "args": args}, queue=queue)
        for i, args in enumerate(parts)
    ]
    callback_kwargs = {**fields, "pipeline": pipeline, "owner": owner, "started": time.time()}
    # The ledger records the callback's outcome; its own result is read by nothing.
    callback = app.signature(COMBINE_TASK, kwargs=callback_kwargs, queue=queue, ignore_result=True)
    result = chord(header)(callback)
    return str(result.parent.id if result.parent is not None else result.id)

"""Celery task messages (protocol 2) as kombu's SQS transport writes them, built without Celery.

The producer runs in a Lambda with boto3 only, so it cannot call `apply_async`. These pure
functions build the same SQS message body an unmodified Celery client sends: a base64-encoded
JSON envelope whose `body` is the base64-encoded JSON `[args, kwargs, embed]`.
Reference: https://docs.celeryq.dev/en/stable/internals/protocol.html#version-2
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

from dropq.signing import SEPARATOR

if TYPE_CHECKING:
    from dropq.signing import Signer

# Celery's content type for signed messages (its `auth` serializer).
SIGNED_CONTENT_TYPE = "application/data"
# The task the producer enqueues for every dropped file; the worker registers it under this name.
PROCESS_TASK = "dropq.process"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_task_message(
    task: str,
    queue: str,
    kwargs: dict[str, Any],
    args: tuple[Any, ...] = (),
    task_id: str | None = None,
    origin: str | None = None,
    signer: Signer | None = None,
) -> tuple[str, str]:
    """Return (task_id, SQS MessageBody) for one task, byte-compatible with kombu's SQS transport.

    With a `signer`, the body is serialized with Celery's `auth` serializer, as workers with signing expect.
    """
    task_id = task_id or str(uuid.uuid4())
    # Celery's JSON serializer is kombu.utils.json.dumps: json.dumps with its default separators.
    body = json.dumps([list(args), kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]).encode("utf-8")
    content_type = "application/json"
    if signer is not None:
        body, content_type = signer.sign(body), SIGNED_CONTENT_TYPE
    envelope = {
        "body": _b64(body),
        "content-encoding": "utf-8",
        "content-type": content_type,
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(tuple(args)),
            "kwargsrepr": repr(kwargs),
            "origin": origin or f"{os.getpid()}@{socket.gethostname()}",
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": str(uuid.uuid4()),
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return task_id, _b64(json.dumps(envelope).encode("utf-8"))


def decode_task_message(message_body: str) -> dict[str, Any]:
    """Decode an SQS body written by kombu (or `build_task_message`) into its envelope, with `body` decoded.

    A signed body is read without checking its signature (workers check it): its JSON is the last packed field.
    """
    envelope = json.loads(base64.b64decode(message_body))
    body = base64.b64decode(envelope["body"])
    if envelope.get("content-type") == SIGNED_CONTENT_TYPE:
        body = base64.b64decode(body).split(SEPARATOR, 4)[4]
    args, kwargs, embed = json.loads(body)
    return {**envelope, "body": {"args": args, "kwargs": kwargs, "embed": embed}}

"""Dead-letter queues: see what landed there, send it back to its queue, or throw it away.

A message lands in a queue's DLQ after maxReceiveCount receives without being acknowledged: a poison
message (not a task dropq can run) or a task whose worker kept dying. Redrive moves messages back
with ReceiveMessage, SendMessageBatch and DeleteMessageBatch (a message is deleted from the DLQ only
once its copy is in the queue), which SQS and the local cloud both serve.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dropq.protocol import decode_task_message
from dropq.topology import SQS_MAX_BATCH

# Seconds a listed message stays hidden from the next receive, so a listing sees each message once.
PEEK_SECONDS = 30


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue, described for people."""

    message_id: str
    sent_at: str
    receive_count: int
    task: str | None
    task_id: str | None
    kwargs: dict[str, Any] | None
    problem: str | None
    body_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def describe(message: dict[str, Any]) -> DeadLetter:
    """What a dead letter is: a Celery task (name, id, arguments) or why it is not one."""
    attributes = message.get("Attributes", {})
    sent = datetime.fromtimestamp(int(attributes.get("SentTimestamp", "0")) / 1000, UTC).isoformat(timespec="seconds")
    body = message.get("Body", "")
    task = task_id = kwargs = problem = None
    try:
        decoded = decode_task_message(body)
        headers = decoded.get("headers") or {}
        task, task_id, kwargs = headers.get("task"), headers.get("id"), decoded["body"]["kwargs"]
        if not task:
            problem = "a message without a task name"
    except (binascii.Error, UnicodeDecodeError):
        problem = "not a Celery message: the body is not base64"
    except (ValueError, KeyError, TypeError) as exc:
        problem = f"not a Celery task message: {type(exc).__name__}: {exc}"
    return DeadLetter(
        message_id=message["MessageId"],
        sent_at=sent,
        receive_count=int(attributes.get("ApproximateReceiveCount", "0")),
        task=task,
        task_id=task_id,
        kwargs=kwargs if isinstance(kwargs, dict) else None,
        problem=problem,
        body_bytes=len(body.encode("utf-8")),
    )


def _receive(sqs: Any, url: str, visibility: int) -> list[dict[str, Any]]:
    return sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=SQS_MAX_BATCH,
        WaitTimeSeconds=0,
        VisibilityTimeout=visibility,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])


def peek(sqs: Any, url: str, limit: int = 100) -> list[DeadLetter]:
    """Up to `limit` messages of a DLQ, left in it (hidden while listed, visible again afterwards)."""
    seen: dict[str, DeadLetter] = {}
    handles: list[str] = []
    while len(seen) < limit:
        batch = _receive(sqs, url, PEEK_SECONDS)
        if not batch:
            break
        for message in batch:
            seen.setdefault(message["MessageId"], describe(message))
            handles.append(message["ReceiptHandle"])
    # Visible again at once, for a redrive or a purge right after the listing.
    for start in range(0, len(handles), SQS_MAX_BATCH):
        chunk = handles[start : start + SQS_MAX_BATCH]
        entries = [{"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0} for i, handle in enumerate(chunk)]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    return list(seen.values())[:limit]


def _batches(sqs: Any, url: str) -> Iterator[list[dict[str, Any]]]:
    while batch := _receive(sqs, url, PEEK_SECONDS):
        yield batch


def redrive(sqs: Any, dlq_url: str, queue_url: str, limit: int | None = None) -> int:
    """Move messages from a DLQ back to its queue; return how many moved."""
    moved = 0
    for batch in _batches(sqs, dlq_url):
        batch = batch[: None if limit is None else limit - moved]
        entries = [
            {
                "Id": str(i),
                "MessageBody": m["Body"],
                **({"MessageAttributes": m["MessageAttributes"]} if m.get("MessageAttributes") else {}),
            }
            for i, m in enumerate(batch)
        ]
        sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        delivered = {entry["Id"] for entry in sent.get("Successful", [])}
        done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch) if str(i) in delivered]
        if done:
            sqs.delete_message_batch(QueueUrl=dlq_url, Entries=done)
        moved += len(done)
        if sent.get("Failed"):
            failure = sent["Failed"][0]
            raise RuntimeError(
                f"SQS refused {len(sent['Failed'])} messages for {queue_url}: {failure.get('Code')} {failure.get('Message', '')}"
            )
        if limit is not None and moved >= limit:
            break
    return moved


def purge(sqs: Any, url: str) -> int:
    """Delete every message of a DLQ; return how many were deleted."""
    deleted = 0
    for batch in _batches(sqs, url):
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
        deleted += len(batch)
    return deleted


def render(letters: list[DeadLetter]) -> str:
    """A listing for the terminal."""
    if not letters:
        return "(empty)"
    lines = []
    for letter in letters:
        what = (
            f"{letter.task}[{letter.task_id}] {json.dumps(letter.kwargs, ensure_ascii=False)}" if letter.problem is None else letter.problem
        )
        lines.append(f"{letter.message_id}  sent {letter.sent_at}  received {letter.receive_count}x  {letter.body_bytes} B  {what}")
    return "\n".join(lines)

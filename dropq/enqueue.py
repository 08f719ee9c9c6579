"""Route objects to their pipelines and enqueue one Celery task message each, in SQS batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dropq.errors import ProducerError
from dropq.ledger import QUEUED
from dropq.objects import ObjectRef
from dropq.observe import PRODUCER, event_logger, log_event
from dropq.protocol import PROCESS_TASK, build_task_message
from dropq.settings import Settings
from dropq.signing import Signer
from dropq.topology import SQS_MAX_BATCH

events = event_logger(PRODUCER)


@dataclass(frozen=True)
class Enqueued:
    """One task message ready for (or sent to) its queue."""

    ref: ObjectRef
    pipeline: str
    queue: str
    task_id: str
    body: str


def task_kwargs(ref: ObjectRef, pipeline: str) -> dict[str, Any]:
    """The keyword arguments of the `dropq.process` task for one object."""
    return {**ref.to_dict(), "pipeline": pipeline}


def plan(ref: ObjectRef, settings: Settings, signer: Signer | None = None) -> Enqueued:
    """Place one object (its pipeline and queue) and build its task message (signed, with a `signer`)."""
    place = settings.topology.place(ref.key, ref.size)
    task_id, body = build_task_message(PROCESS_TASK, place.queue, task_kwargs(ref, place.pipeline), signer=signer)
    return Enqueued(ref=ref, pipeline=place.pipeline, queue=place.queue, task_id=task_id, body=body)


def send_batches(sqs: Any, queue_url: str, items: list[Enqueued]) -> list[tuple[Enqueued, str]]:
    """Send messages with SendMessageBatch, ten at a time; return each message SQS did not take, with why."""
    refused: list[tuple[Enqueued, str]] = []
    for start in range(0, len(items), SQS_MAX_BATCH):
        chunk = items[start : start + SQS_MAX_BATCH]
        try:
            response = sqs.send_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "MessageBody": item.body} for i, item in enumerate(chunk)],
            )
        except (BotoCoreError, ClientError) as exc:  # after the SDK's own retries
            refused += [(item, f"SQS SendMessageBatch failed: {exc}") for item in chunk]
            continue
        for failure in response.get("Failed", []):
            refused.append((chunk[int(failure["Id"])], f"SQS refused the message: {failure.get('Code')} {failure.get('Message', '')}"))
    return refused


def send_all(sqs: Any, queue_url: str, items: list[Enqueued]) -> None:
    """Send messages in batches; ProducerError naming each one SQS did not take."""
    refused = send_batches(sqs, queue_url, items)
    if refused:
        details = "; ".join(f"{item.ref.uri}: {reason}" for item, reason in refused)
        raise ProducerError(f"SQS took {len(items) - len(refused)} of {len(items)} messages for {queue_url}: {details}")


@dataclass
class Enqueuing:
    """What enqueuing a set of objects did: the messages sent, the objects skipped, and each object that failed, with why."""

    enqueued: list[Enqueued] = field(default_factory=list)
    skipped: int = 0
    failed: dict[ObjectRef, str] = field(default_factory=dict)

    def raise_for_failures(self) -> None:
        """ProducerError naming every object that failed (an invocation Lambda must retry)."""
        if self.failed:
            details = "; ".join(f"{ref.uri}: {reason}" for ref, reason in self.failed.items())
            total = len(self.failed) + len(self.enqueued) + self.skipped
            raise ProducerError(f"{len(self.failed)} of {total} objects not enqueued: {details}")


# Ledger writes made side by side (a reprocessing's, a backfill's): each one conditional UpdateItem, a round trip apiece.
LEDGER_WRITERS = 10
_writers: ThreadPoolExecutor | None = None


def side_by_side(write: Callable[[Enqueued], bool], items: list[Enqueued]) -> list[Future[bool]]:
    """`write` each item on the shared pool of ledger writers; its future for each item, in order."""
    global _writers
    if _writers is None:
        _writers = ThreadPoolExecutor(max_workers=LEDGER_WRITERS, thread_name_prefix="ledger")
    return [_writers.submit(write, item) for item in items]


def enqueue_objects(
    objects: tuple[ObjectRef, ...] | list[ObjectRef],
    settings: Settings,
    sqs: Any,
    signer: Signer | None = None,
    mark: Callable[[Enqueued], bool] | None = None,
) -> Enqueuing:
    """Send each object's task, a batch per queue; an object whose message (or `mark`) failed is reported with why,
    the others go ahead.

    Nothing is written to the ledger first: a file's claim creates its entry, and catches a repeated event (S3
    delivers a notification at least once). `mark` is a ledger write that must come before the message (a
    reprocessing moves a succeeded file to queued, which its claim then takes), made side by side; False skips the
    object."""
    outcome = Enqueuing()
    # One object twice in a batch is sent once.
    planned = [plan(ref, settings, signer) for ref in dict.fromkeys(objects)]
    if mark is not None:
        marked = []
        for item, future in zip(planned, side_by_side(mark, planned), strict=True):
            try:
                written = future.result()
            except (BotoCoreError, ClientError) as exc:
                outcome.failed[item.ref] = f"ledger write failed: {exc}"
                continue
            if not written:
                log_event(events, "skipped", ref=item.ref, state="skipped", pipeline=item.pipeline, reason="changed meanwhile")
                outcome.skipped += 1
                continue
            marked.append(item)
        planned = marked
    by_queue: dict[str, list[Enqueued]] = defaultdict(list)
    for item in planned:
        by_queue[item.queue].append(item)
    for queue, items in by_queue.items():
        refused = {id(item): reason for item, reason in send_batches(sqs, settings.queue_url(queue), items)}
        for item in items:
            if id(item) in refused:
                outcome.failed[item.ref] = refused[id(item)]
                continue
            outcome.enqueued.append(item)
            # At DEBUG: the batch's `handled` line counts it.
            log_event(
                events, "enqueued", ref=item.ref, task_id=item.task_id, state=QUEUED, level="debug", pipeline=item.pipeline, queue=queue
            )
    return outcome

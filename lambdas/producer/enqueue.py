"""Route objects to their pipelines and enqueue one Celery task message each, in SQS batches."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from dropq.errors import ProducerError
from dropq.ledger import QUEUED, Ledger
from dropq.objects import ObjectRef
from dropq.observe import PRODUCER, event_logger, log_event
from dropq.protocol import PROCESS_TASK, build_task_message
from dropq.settings import Settings
from dropq.signing import Signer
from infra.topology import SQS_MAX_BATCH

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


def send_batches(sqs: Any, queue_url: str, items: list[Enqueued]) -> None:
    """Send messages with SendMessageBatch, ten at a time; raise if any entry is refused."""
    for start in range(0, len(items), SQS_MAX_BATCH):
        chunk = items[start : start + SQS_MAX_BATCH]
        response = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": item.body} for i, item in enumerate(chunk)],
        )
        failed = response.get("Failed", [])
        if failed:
            details = "; ".join(f"{chunk[int(f['Id'])].ref.uri}: {f.get('Code')} {f.get('Message', '')}" for f in failed)
            raise ProducerError(f"SQS refused {len(failed)} of {len(chunk)} messages for {queue_url}: {details}")


def enqueue_objects(
    objects: tuple[ObjectRef, ...], settings: Settings, sqs: Any, ledger: Ledger, signer: Signer | None = None
) -> list[Enqueued]:
    """Record each object as queued and send its task; objects already running or done are skipped."""
    by_queue: dict[str, list[Enqueued]] = defaultdict(list)
    for ref in objects:
        item = plan(ref, settings, signer)
        if not ledger.mark_queued(ref, item.pipeline, item.queue, item.task_id):
            # Its planned task is never sent; the ledger keeps the id of the task that runs or ran it.
            log_event(events, "skipped", ref=ref, state="skipped", pipeline=item.pipeline, reason="already running or done")
            continue
        by_queue[item.queue].append(item)
    for queue, items in by_queue.items():
        send_batches(sqs, settings.queue_url(queue), items)
        for item in items:
            log_event(events, "enqueued", ref=item.ref, task_id=item.task_id, state=QUEUED, pipeline=item.pipeline, queue=queue)
    return [item for items in by_queue.values() for item in items]

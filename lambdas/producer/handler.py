"""Lambda entry point: S3's notifications in batches from the inbox events queue (or one S3 event, or a schedule's
firing); route each object and enqueue its Celery task. It writes nothing to the ledger: a file's claim creates its entry."""

from __future__ import annotations

from typing import Any

from dropq.enqueue import enqueue_objects
from dropq.ledger import QUEUED
from dropq.observe import PRODUCER, event_logger, log_event
from dropq.schedules import enqueue_run, is_schedule_event, parse_firing
from dropq.settings import Settings, load_settings, require_deployment
from dropq.signing import Signer, materialize, signer_for
from lambdas.producer.events import is_queue_batch, parse_queue_batch, parse_s3_event

events = event_logger(PRODUCER)

_settings: Settings | None = None
_clients: dict[str, Any] = {}


def _cold_start() -> tuple[Settings, Any, Signer | None]:
    """Settings, the SQS client and the message signer, built once per Lambda container."""
    global _settings
    if _settings is None:
        require_deployment()
        settings = materialize(load_settings())
        _clients["sqs"] = settings.client("sqs")
        _clients["signer"] = signer_for(settings)
        # Set last: a concurrent invocation (the local runtime runs several) sees settings only with their clients.
        _settings = settings
    return _settings, _clients["sqs"], _clients["signer"]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Handle a batch of the inbox events queue (reporting the messages to retry), a schedule's firing or one S3 event
    (both invoked asynchronously: an exception makes Lambda retry)."""
    settings, sqs, signer = _cold_start()
    if is_schedule_event(event):
        firing = parse_firing(event, settings.topology)
        task_id = enqueue_run(firing, settings, sqs, signer)
        log_event(events, "scheduled", task_id=task_id, state=QUEUED, schedule=firing.schedule, scheduled_time=firing.scheduled_time)
        return {"schedule": firing.schedule, "scheduled_time": firing.scheduled_time, "task_id": task_id}
    if is_queue_batch(event):
        return handle_batch(event, settings, sqs, signer)
    parsed = parse_s3_event(event, settings.topology)
    outcome = enqueue_objects(parsed.objects, settings, sqs=sqs, signer=signer)
    outcome.raise_for_failures()
    log_event(events, "handled", enqueued=len(outcome.enqueued), ignored=parsed.ignored)
    return {"enqueued": len(outcome.enqueued), "ignored": parsed.ignored}


def handle_batch(event: dict[str, Any], settings: Settings, sqs: Any, signer: Signer | None) -> dict[str, Any]:
    """Enqueue the objects of every notification of a batch together; the partial batch response names the messages
    that must come back (a send failed for one of their objects, or the body is no S3 notification)."""
    notifications = parse_queue_batch(event, settings.topology)
    objects = [ref for n in notifications for ref in n.parsed.objects]
    outcome = enqueue_objects(objects, settings, sqs=sqs, signer=signer)
    retry = []
    for notification in notifications:
        reasons = [outcome.failed[ref] for ref in notification.parsed.objects if ref in outcome.failed]
        if notification.problem:
            log_event(events, "rejected", level="warning", message_id=notification.message_id, reason=notification.problem)
            retry.append(notification.message_id)
        elif reasons:
            log_event(events, "retry", level="warning", message_id=notification.message_id, reason="; ".join(reasons))
            retry.append(notification.message_id)
    log_event(
        events,
        "handled",
        notifications=len(notifications),
        enqueued=len(outcome.enqueued),
        ignored=sum(n.parsed.ignored for n in notifications),
        retried=len(retry),
    )
    # https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html#services-sqs-batchfailurereporting
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in retry]}

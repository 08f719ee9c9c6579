"""Lambda entry point: parse the S3 event, route each object, enqueue its Celery task, record it."""

from __future__ import annotations

from typing import Any

from dropq.ledger import QUEUED, ledger_for
from dropq.observe import PRODUCER, event_logger, log_event
from dropq.settings import Settings, load_settings
from dropq.signing import Signer, materialize, signer_for
from lambdas.producer.enqueue import enqueue_objects
from lambdas.producer.events import parse_s3_event
from lambdas.producer.schedules import enqueue_run, is_schedule_event, parse_firing

events = event_logger(PRODUCER)

_settings: Settings | None = None
_clients: dict[str, Any] = {}


def _cold_start() -> tuple[Settings, Any, Any, Signer | None]:
    """Settings, clients and the message signer, built once per Lambda container."""
    global _settings
    if _settings is None:
        settings = materialize(load_settings())
        _clients["sqs"] = settings.client("sqs")
        _clients["ledger"] = ledger_for(settings)
        _clients["signer"] = signer_for(settings)
        # Set last: a concurrent invocation (the local runtime runs several) sees settings only with their clients.
        _settings = settings
    return _settings, _clients["sqs"], _clients["ledger"], _clients["signer"]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Handle one S3 event notification, or one schedule's firing (both invoke this asynchronously; an exception makes Lambda retry)."""
    settings, sqs, ledger, signer = _cold_start()
    if is_schedule_event(event):
        firing = parse_firing(event, settings.topology)
        task_id = enqueue_run(firing, settings, sqs, signer)
        log_event(events, "scheduled", task_id=task_id, state=QUEUED, schedule=firing.schedule, scheduled_time=firing.scheduled_time)
        return {"schedule": firing.schedule, "scheduled_time": firing.scheduled_time, "task_id": task_id}
    parsed = parse_s3_event(event, settings.topology)
    enqueued = enqueue_objects(parsed.objects, settings, sqs=sqs, ledger=ledger, signer=signer)
    log_event(events, "handled", enqueued=len(enqueued), ignored=parsed.ignored)
    return {"enqueued": len(enqueued), "ignored": parsed.ignored}

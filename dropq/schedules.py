"""Periodic tasks without a beat process: a scheduler invokes the producer, the producer enqueues the run.

In AWS, EventBridge Scheduler invokes the producer with `{"dropq_schedule": NAME, "scheduled_time": TIME}`
(the time is its `<aws.scheduler.scheduled-time>`); locally `dropq up` sends the same payload to the same
handler. Either may deliver it twice: the worker claims each period's run in DynamoDB (tasks/periodic.py),
so a period runs once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dropq.errors import ProducerError
from dropq.protocol import build_task_message
from dropq.settings import Settings
from dropq.signing import Signer
from dropq.topology import Topology

SCHEDULE_FIELD = "dropq_schedule"
TIME_FIELD = "scheduled_time"


@dataclass(frozen=True)
class Firing:
    """One scheduled run: which schedule, and the period it is for (its scheduled time, UTC, to the second)."""

    schedule: str
    scheduled_time: str


def period_id(moment: datetime) -> str:
    """The canonical form of a scheduled time: ISO 8601 UTC to the second, as EventBridge Scheduler writes it."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def is_schedule_event(event: dict[str, Any]) -> bool:
    """Whether the producer was invoked by a scheduler rather than by S3."""
    return isinstance(event, dict) and SCHEDULE_FIELD in event


def parse_firing(event: dict[str, Any], topology: Topology) -> Firing:
    """The run a scheduler asks for; ProducerError (the invocation fails, and is retried or recorded) if it is malformed."""
    name, when = event.get(SCHEDULE_FIELD), event.get(TIME_FIELD)
    known = [s.name for s in topology.schedules]
    if name not in known:
        raise ProducerError(f"unknown schedule {name!r}; the topology declares {', '.join(known) or 'none'}")
    try:
        moment = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    except ValueError:
        raise ProducerError(f"schedule {name}: {TIME_FIELD}={when!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ProducerError(f"schedule {name}: {TIME_FIELD}={when!r} has no time zone")
    return Firing(schedule=name, scheduled_time=period_id(moment))


def enqueue_run(firing: Firing, settings: Settings, sqs: Any, signer: Signer | None = None) -> str:
    """Send the schedule's task for one period; return its task id."""
    schedule = settings.topology.schedule(firing.schedule)
    kwargs = {"schedule": schedule.name, "scheduled_time": firing.scheduled_time}
    task_id, body = build_task_message(schedule.task, schedule.queue, kwargs, signer=signer)
    sqs.send_message(QueueUrl=settings.queue_url(schedule.queue), MessageBody=body)
    return task_id

"""Periodic tasks (declared as `schedules` in the topology): each period's run is claimed in DynamoDB, so it runs once.

- `dropq.report`: the day before the scheduled time, summed up in reports/daily/<day>.json from the ledger's
  per-minute counts and its failed files.
- `dropq.sweep`: files stuck in `queued` or `running` past a deadline, whose message is gone, are enqueued
  again (at most MAX_SWEEPS times each; then they fail with a reason).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import current_task

from dropq import counts
from dropq.counts import counts_for, percentile
from dropq.enqueue import plan, send_all
from dropq.ledger import FAILED, QUEUED, RUNNING, SUCCEEDED, entry_ref, iso, ledger_for
from dropq.queues import queue_counts
from dropq.signing import signer_for
from dropq.topology import QueueSpec
from tasks.app import app, settings
from tasks.tally import record

logger = logging.getLogger("dropq.worker")

REPORT_TASK = "dropq.report"
SWEEP_TASK = "dropq.sweep"
# A period's run holds its claim for its time limit and this margin; a run whose worker died is taken over after it.
RUN_LEASE_MARGIN_SECONDS = 30
# Another delivery of a period's run looks again this often while the run holds its claim.
RECHECK_SECONDS = 10
# A file the sweep has enqueued this many times and that is still stuck fails, with the reason.
MAX_SWEEPS = 3
# How many failures a daily report lists (all are counted).
REPORT_FAILURES = 100

PeriodicBody = Callable[[datetime], dict[str, Any]]


def periodic(name: str) -> Callable[[PeriodicBody], Any]:
    """Register a periodic task: it gets its scheduled time and returns a JSON summary, recorded with its claim."""

    def register(body: PeriodicBody) -> Any:
        @app.task(name=name, bind=True, acks_late=True)
        def run(self: Any, *, schedule: str, scheduled_time: str) -> dict[str, Any]:
            ledger = ledger_for(settings)
            lease = (app.conf.task_time_limit or 0) + RUN_LEASE_MARGIN_SECONDS
            claim = ledger.claim_period(schedule, scheduled_time, self.request.id, lease)
            if not claim.acquired:
                if claim.state != RUNNING:
                    logger.info("schedule %s: the run for %s already %s; this one is skipped", schedule, scheduled_time, claim.state)
                    return {"state": "skipped", "schedule": schedule, "scheduled_time": scheduled_time}
                countdown = max(1, min(RECHECK_SECONDS, math.ceil(claim.lease_remaining) + 1))
                logger.info("schedule %s: the run for %s is running elsewhere; checking again in %ss", schedule, scheduled_time, countdown)
                raise self.retry(countdown=countdown, max_retries=self.request.retries + 1)
            try:
                summary = body(datetime.fromisoformat(scheduled_time.replace("Z", "+00:00")))
            except Exception as exc:
                ledger.finish_period(schedule, scheduled_time, self.request.id, FAILED, {"reason": f"{type(exc).__name__}: {exc}"})
                raise
            ledger.finish_period(schedule, scheduled_time, self.request.id, SUCCEEDED, summary)
            logger.info("schedule %s: the run for %s succeeded: %s", schedule, scheduled_time, summary)
            return {"state": SUCCEEDED, "schedule": schedule, "scheduled_time": scheduled_time, **summary}

        return run

    return register


@periodic(REPORT_TASK)
def daily_report(scheduled: datetime) -> dict[str, Any]:
    """Sum up the day before `scheduled`: files finished by state and pipeline, durations, failures with their reasons.

    From the day's per-minute counts (one Query for up to 1,440 items) and at most REPORT_FAILURES failed entries:
    what it reads and holds does not grow with the day's traffic.
    """
    day = (scheduled.astimezone(UTC) - timedelta(days=1)).date()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1) - timedelta(microseconds=1)
    summed = counts.total(counts_for(settings).minutes(start, end).values())
    by_pipeline: dict[str, dict[str, int]] = defaultdict(dict)
    for name, count in summed.items():
        state, _, pipeline = name.partition(":")
        if state in (SUCCEEDED, FAILED) and pipeline:
            by_pipeline[pipeline][state] = count
    histogram = counts.durations(summed)
    failures = sorted(ledger_for(settings).failures(start, end, limit=REPORT_FAILURES), key=lambda e: e.get("failed_at", ""))
    report = {
        "day": day.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": summed[SUCCEEDED] + summed[FAILED],
        "by_state": {state: summed[state] for state in (SUCCEEDED, FAILED) if summed[state]},
        "by_pipeline": {name: states for name, states in sorted(by_pipeline.items())},
        # From a histogram of 8 buckets per doubling: each figure is at most 9% above the true one.
        "duration_ms": {
            "p50": percentile(histogram, 0.5),
            "p95": percentile(histogram, 0.95),
            "max": percentile(histogram, 1.0),
        },
        # Files that failed that day and are failed still; `by_state` counts every failure recorded.
        "failures": [{"key": e["key"], "reason": e.get("reason")} for e in failures],
    }
    key = f"{settings.topology.reports_prefix}daily/{day.isoformat()}.json"
    body = json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8")
    settings.client("s3").put_object(Bucket=settings.bucket, Key=key, Body=body, ContentType="application/json")
    return {"report": key, "files": report["files"]}


def stuck_before(queue: QueueSpec, busy: bool, cutoff: datetime, now: datetime) -> datetime:
    """Before when a file of `queue` must have been updated last to count as stuck.

    A file waits in its queue as long as the queue holds messages: while it is busy (messages visible, delayed or
    in flight), a file of it is stuck only once its message cannot be there any more, past the queue's retention.
    """
    return min(cutoff, now - timedelta(seconds=queue.retention_seconds)) if busy else cutoff


@periodic(SWEEP_TASK)
def sweep(scheduled: datetime) -> dict[str, Any]:
    """Enqueue again the files stuck in `queued` or `running` (their message is gone) for longer than DROPQ_STUCK_AFTER_SECONDS.

    Reads only candidates: the `open` index's files of each queue that have been in flight since before the cutoff.
    A file whose queue holds messages may be waiting in it, however long the backlog: it is left alone.
    """
    ledger, sqs, signer = ledger_for(settings), settings.client("sqs"), signer_for(settings)
    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=settings.stuck_after_seconds)
    # The sweep's own message is in flight on its queue while it runs.
    own_queue = (current_task.request.delivery_info or {}).get("routing_key") if current_task else None
    stuck = requeued = failed = waiting = 0
    for queue in settings.topology.queues:
        depth = queue_counts(sqs, settings.queue_url(queue.name))
        busy = depth["visible"] + depth["delayed"] > 0 or depth["in_flight"] > int(queue.name == own_queue)
        before = iso(stuck_before(queue, busy, cutoff, now))
        for keys in ledger.open_keys(queue.name, before):
            for entry in ledger.entries(keys):
                if entry.get("state") not in (QUEUED, RUNNING):
                    continue
                if entry.get("updated_at", "") >= before or not _lease_ran_out(entry):
                    # In flight since long ago, but active lately (a retry, a long task that holds its lease).
                    continue
                stuck += 1
                requeued_now, failed_now = _sweep_one(entry, before, ledger, sqs, signer)
                requeued += requeued_now
                failed += failed_now
        if busy:
            waiting += 1
    return {"stuck": stuck, "requeued": requeued, "failed": failed, "busy_queues": waiting}


def _lease_ran_out(entry: dict[str, Any]) -> bool:
    return entry.get("state") == QUEUED or float(entry.get("lease_until") or 0) < time.time()


def _sweep_one(entry: dict[str, Any], before: str, ledger: Any, sqs: Any, signer: Any) -> tuple[int, int]:
    """Enqueue one stuck file again, or fail it once the sweep has tried MAX_SWEEPS times; (requeued, failed)."""
    ref = entry_ref(entry)
    if int(entry.get("sweeps") or 0) >= MAX_SWEEPS:
        reason = f"stuck in {entry['state']}: enqueued again {MAX_SWEEPS} times by the sweep and never finished (see the dead-letter queue)"
        if ledger.fail_stuck(ref, before, reason):
            record(entry.get("pipeline") or "?", succeeded=False, duration_ms=None)
            return 0, 1
        return 0, 0
    item = plan(ref, settings, signer)
    if not ledger.requeue(ref, item.task_id, before, entry=entry):
        return 0, 0
    send_all(sqs, settings.queue_url(item.queue), [item])
    logger.warning("sweep: %s was stuck in %s since %s; enqueued again", ref.uri, entry["state"], entry.get("updated_at"))
    return 1, 0

"""Periodic tasks (declared as `schedules` in the topology): each period's run is claimed in DynamoDB, so it runs once.

- `dropq.report`: the ledger's day before the scheduled time, summed up in reports/daily/<day>.json.
- `dropq.sweep`: files stuck in `queued` or `running` past a deadline are enqueued again (at most
  MAX_SWEEPS times each; then they fail with a reason).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from dropq.ledger import FAILED, QUEUED, RUNNING, SUCCEEDED, entry_ref, ledger_for
from dropq.signing import signer_for
from lambdas.producer.enqueue import plan, send_batches
from tasks.app import app, settings

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


def _percentile(values: list[int], fraction: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


@periodic(REPORT_TASK)
def daily_report(scheduled: datetime) -> dict[str, Any]:
    """Sum up the day before `scheduled`: files by state and pipeline, durations, failures with their reasons."""
    day = (scheduled.astimezone(UTC) - timedelta(days=1)).date().isoformat()
    entries = ledger_for(settings).day(day)
    by_pipeline: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in entries:
        by_pipeline[entry.get("pipeline") or "?"][entry.get("state") or "?"] += 1
    durations = [int(e["duration_ms"]) for e in entries if e.get("state") == SUCCEEDED and e.get("duration_ms") is not None]
    failures = sorted((e for e in entries if e.get("state") == FAILED), key=lambda e: e.get("updated_at", ""))
    report = {
        "day": day,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": len(entries),
        "by_state": dict(Counter(e.get("state") or "?" for e in entries)),
        "by_pipeline": {name: dict(states) for name, states in sorted(by_pipeline.items())},
        "duration_ms": {"p50": _percentile(durations, 0.5), "p95": _percentile(durations, 0.95), "max": max(durations, default=None)},
        "failures": [{"key": e["key"], "reason": e.get("reason")} for e in failures[:REPORT_FAILURES]],
    }
    key = f"{settings.topology.reports_prefix}daily/{day}.json"
    body = json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8")
    settings.client("s3").put_object(Bucket=settings.bucket, Key=key, Body=body, ContentType="application/json")
    return {"report": key, "files": len(entries)}


@periodic(SWEEP_TASK)
def sweep(scheduled: datetime) -> dict[str, Any]:
    """Enqueue again the files stuck in `queued` or `running` for longer than DROPQ_STUCK_AFTER_SECONDS."""
    ledger, sqs, signer = ledger_for(settings), settings.client("sqs"), signer_for(settings)
    now = datetime.now(UTC)
    cutoff = (now - timedelta(seconds=settings.stuck_after_seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    stuck = [
        entry
        for offset in (0, 1)
        for entry in ledger.day((now.date() - timedelta(days=offset)).isoformat())
        if entry.get("state") in (QUEUED, RUNNING) and entry.get("updated_at", "") < cutoff
    ]
    requeued = failed = 0
    for entry in stuck:
        ref = entry_ref(entry)
        if int(entry.get("sweeps") or 0) >= MAX_SWEEPS:
            reason = (
                f"stuck in {entry['state']}: enqueued again {MAX_SWEEPS} times by the sweep and never finished (see the dead-letter queue)"
            )
            failed += ledger.fail_stuck(ref, cutoff, reason)
            continue
        item = plan(ref, settings, signer)
        if ledger.requeue(ref, item.task_id, cutoff):
            send_batches(sqs, settings.queue_url(item.queue), [item])
            requeued += 1
            logger.warning("sweep: %s was stuck in %s since %s; enqueued again", ref.uri, entry["state"], entry.get("updated_at"))
    return {"stuck": len(stuck), "requeued": requeued, "failed": failed}

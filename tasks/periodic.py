"""Periodic tasks (declared as `schedules` in the topology): each period's run is claimed in DynamoDB, so it runs once.

- `dropq.report`: the day before the scheduled time, summed up in reports/daily/<day>.json from the ledger's
  per-minute counts and its failed files.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from dropq import counts
from dropq.counts import counts_for, percentile
from dropq.ledger import FAILED, RUNNING, SUCCEEDED, ledger_for
from tasks.app import app, settings

logger = logging.getLogger("dropq.worker")

REPORT_TASK = "dropq.report"
# A period's run holds its claim for its time limit and this margin; a run whose worker died is taken over after it.
RUN_LEASE_MARGIN_SECONDS = 30
# Another delivery of a period's run looks again this often while the run holds its claim.
RECHECK_SECONDS = 10
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

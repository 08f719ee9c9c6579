"""Periodic tasks without a beat singleton: fired through the producer, each period's run claimed in DynamoDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dropq.counts import counts_for, total
from dropq.ledger import ledger_for
from dropq.schedules import period_id
from infra.local.cloud import LocalCloud
from tests.conftest import wait_for, wait_for_outcome
from tests.faults.inject import drop

pytestmark = pytest.mark.e2e


def dropq(cloud: LocalCloud, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cloud.exports()}
    return subprocess.run(
        [str(Path(sys.executable).with_name("dropq")), *args], env=env, capture_output=True, text=True, timeout=60, check=True
    )


def test_two_schedulers_firing_the_same_period_run_the_daily_report_once(workloads_cloud: LocalCloud) -> None:
    settings = workloads_cloud.settings
    ledger = ledger_for(settings)
    drop(settings, {"incoming/report/good.txt": b"fine", "incoming/report/empty.txt": b""})
    failed = wait_for_outcome(ledger, settings.bucket, "incoming/report/empty.txt")
    wait_for_outcome(ledger, settings.bucket, "incoming/report/good.txt")
    # Workers add their outcome counts every few seconds (tasks/tally.py); the report runs five minutes after its day.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    counted = lambda: total(counts_for(settings).minutes(today, datetime.now(UTC)).values())  # noqa: E731
    wait_for(lambda: counted()["failed"] >= 1 and counted()["succeeded"] >= 1, 30, "the outcomes to be counted")

    # The period that reports on today: tomorrow's 00:05, as EventBridge would fire it (twice: it delivers at least once).
    period = period_id(datetime.now(UTC).replace(hour=0, minute=5, second=0) + timedelta(days=1))
    for _ in range(2):
        workloads_cloud.invoke_producer({"dropq_schedule": "daily-report", "scheduled_time": period})

    run = wait_for(lambda: (e := ledger.period("daily-report", period)) and e["state"] == "succeeded" and e, 60, "the report's run")
    report_key = f"reports/daily/{datetime.now(UTC).date().isoformat()}.json"
    assert run["summary"]["report"] == report_key
    report = json.loads(settings.client("s3").get_object(Bucket=settings.bucket, Key=report_key)["Body"].read())
    assert report["files"] >= 2 and report["by_state"]["failed"] >= 1
    assert {"key": "incoming/report/empty.txt", "reason": failed["reason"]} in report["failures"]

    def logs() -> str:
        return "".join(p.read_text() for p in Path(workloads_cloud.state_dir).glob("worker-*.log"))

    skipped = f"schedule daily-report: the run for {period} already succeeded; this one is skipped"
    wait_for(lambda: skipped in logs(), 60, "the second delivery to be skipped")
    assert logs().count(f"schedule daily-report: the run for {period} succeeded") == 1, "one run for the period"


def test_the_schedule_commands_list_the_schedules_and_fire_one_now(workloads_cloud: LocalCloud) -> None:
    ledger = ledger_for(workloads_cloud.settings)
    listed = dropq(workloads_cloud, "schedule", "list").stdout
    assert "daily-report" in listed and "cron(5 0 * * ? *)" in listed

    fired = dropq(workloads_cloud, "schedule", "run", "daily-report").stdout
    assert fired.startswith("enqueued dropq.report for "), fired
    period = fired.split(" for ", 1)[1].split(" ", 1)[0]
    run = wait_for(lambda: (e := ledger.period("daily-report", period)) and e["state"] == "succeeded" and e, 60, "the run fired now")
    assert run["summary"]["report"].startswith("reports/daily/")

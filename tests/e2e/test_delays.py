"""A countdown longer than one SQS delay hops from delay to delay, and the task runs once, when it is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery

from dropq.ledger import ledger_for
from dropq.protocol import PROCESS_TASK
from infra.local.cloud import LocalCloud
from tasks.config import celery_config
from tests.conftest import TEST_HOP_SECONDS, wait_for, wait_for_outcome
from tests.e2e.test_observability import task_events
from tests.faults.inject import drop

pytestmark = pytest.mark.e2e

COUNTDOWN = 5 * TEST_HOP_SECONDS - 1


def test_a_countdown_of_several_hops_runs_the_task_once_when_it_is_due(workloads_cloud: LocalCloud) -> None:
    settings = workloads_cloud.settings
    ledger = ledger_for(settings)
    wait_for(lambda: any(w["sk"].startswith("default-1@") for w in ledger.workers()), 60, "the default worker to be up")
    (ref,) = drop(settings, {"work/delays/later.txt": b"run me later"}).values()
    client = Celery("client")
    client.config_from_object(celery_config(settings))

    eta = datetime.now(UTC) + timedelta(seconds=COUNTDOWN)
    result = client.send_task(PROCESS_TASK, kwargs={**ref.to_dict(), "pipeline": "metadata"}, queue="default", eta=eta)
    entry = wait_for_outcome(ledger, settings.bucket, ref.key, timeout=COUNTDOWN + 30)

    assert entry["state"] == "succeeded" and entry["completions"] == 1
    started = datetime.fromisoformat(entry["started_at"].replace("Z", "+00:00"))
    assert started >= eta - timedelta(seconds=0.01), f"ran at {started}, before its ETA {eta}"
    logs = "".join(p.read_text() for p in Path(workloads_cloud.state_dir).glob("worker-default-*.log"))
    hops = logs.count(f"task {result.id} is due in")
    # Sent with a 2 s delay, then hopped at about 7, 5, 3 and 1 s before its ETA: never held by a worker meanwhile.
    assert hops >= 2, f"hopped {hops} times"
    events = task_events(Path(workloads_cloud.state_dir), result.id, "worker-default-*.log")
    assert events == ["succeeded"] and entry["attempts"] == 1, "handed to Celery once, when due"

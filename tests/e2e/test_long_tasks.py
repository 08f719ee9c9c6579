"""A task longer than its queue's visibility timeout runs once: the worker keeps its message invisible."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dropq.ledger import ledger_for
from dropq.settings import local_settings
from dropq.topology import MIN_VISIBILITY_TIMEOUT, TOPOLOGY
from infra.local.cloud import LocalCloud
from infra.local.server import free_port
from ops.status import queue_counts
from tests.conftest import wait_for, wait_for_outcome
from tests.e2e.test_observability import task_events
from tests.faults.inject import drop, send_task

pytestmark = pytest.mark.e2e

# The shortest visibility timeout the topology allows, and a task that outlasts it by a third.
VISIBILITY = MIN_VISIBILITY_TIMEOUT
TASK_SECONDS = VISIBILITY + VISIBILITY // 3


def test_a_task_longer_than_the_visibility_timeout_is_received_once(tmp_path: Path) -> None:
    queue = dataclasses.replace(TOPOLOGY.queues[0], visibility_timeout=VISIBILITY)
    topology = dataclasses.replace(TOPOLOGY, queues=(queue, *TOPOLOGY.queues[1:]))
    settings = local_settings(port=free_port(), state_dir=str(tmp_path), topology=topology, pipeline_modules=("tests.workloads",))
    with LocalCloud(settings, workers={"default": 2}) as cloud:
        (ref,) = drop(settings, {"work/long/task.txt": str(TASK_SECONDS).encode()}).values()
        task_id = send_task(settings, ref, "sleep")
        sqs, url = settings.client("sqs"), settings.queue_url("default")
        ledger = ledger_for(settings)
        wait_for(lambda: (ledger.get(settings.bucket, ref.key) or {}).get("state") == "running", 30, "the task to start")
        wait_for(
            lambda: queue_counts(sqs, url)["visible"] > 0 or (ledger.get(settings.bucket, ref.key) or {})["state"] == "succeeded",
            TASK_SECONDS + 30,
            "the task to finish (or its message to reappear)",
        )
        entry = wait_for_outcome(ledger, settings.bucket, ref.key, timeout=30)
        events = task_events(Path(cloud.state_dir), task_id)
    assert entry["state"] == "succeeded" and entry["completions"] == 1 and entry["attempts"] == 1
    # A second delivery would have logged a retry (the lease is held) or a skip (the file succeeded).
    assert events == ["succeeded"], "the message was delivered once, never again after its visibility timeout"

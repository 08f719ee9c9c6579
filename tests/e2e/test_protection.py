"""A real worker holds ECS task scale-in protection while it has work, and drops it once idle."""

from __future__ import annotations

from pathlib import Path

import pytest

from dropq.ledger import ledger_for
from dropq.settings import local_settings
from infra.local.cloud import LocalCloud
from infra.local.server import free_port
from tests.conftest import wait_for, wait_for_outcome
from tests.ecs_agent import FakeEcsAgent
from tests.faults.inject import drop, send_task

pytestmark = pytest.mark.e2e


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_busy_worker_is_protected_from_scale_in_and_an_idle_one_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeEcsAgent() as agent:
        monkeypatch.setenv("ECS_AGENT_URI", agent.uri)
        settings = local_settings(port=free_port(), state_dir=str(tmp_path), pipeline_modules=("tests.workloads",))
        with LocalCloud(settings, workers={"default": 1}):
            (ref,) = drop(settings, {"work/protect/busy.txt": b"3"}).values()
            send_task(settings, ref, "sleep")
            wait_for(lambda: agent.enabled, 30, "protection while the worker is busy")
            entry = wait_for_outcome(ledger_for(settings), settings.bucket, ref.key)
            wait_for(lambda: not agent.enabled, 30, "protection to be dropped once the worker is idle")
    assert entry["state"] == "succeeded"
    on = [at for at, enabled, _ in agent.changes if enabled]
    off = [at for at, enabled, _ in agent.changes if not enabled]
    assert on and off
    assert on[0] <= _epoch(entry["started_at"]) and off[-1] >= _epoch(entry["finished_at"]), "protected for the whole task"

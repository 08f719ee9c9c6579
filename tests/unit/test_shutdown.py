"""The shutdown deadline: a warm shutdown turns cold once the pool's grace is over."""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import time

import pytest

import tasks.shutdown as shutdown
from dropq.topology import SHUTDOWN_MARGIN, TOPOLOGY


def test_a_warm_shutdown_cancels_what_still_runs_once_the_pools_grace_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = dataclasses.replace(TOPOLOGY.pools[0], stop_timeout=SHUTDOWN_MARGIN + 1)
    topology = dataclasses.replace(TOPOLOGY, pools=(pool, *TOPOLOGY.pools[1:]))
    settings = dataclasses.replace(shutdown.settings, topology=topology, pool=pool.name)
    assert settings.shutdown_grace == 1
    monkeypatch.setattr(shutdown, "settings", settings)
    monkeypatch.setattr(shutdown, "_deadline", None)
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(shutdown.os, "kill", lambda pid, sig: sent.append((pid, sig)))

    shutdown.start_deadline(sig="SIGQUIT", how="Cold")
    assert shutdown._deadline is None, "a cold shutdown is already the end"
    shutdown.start_deadline(sig="SIGTERM", how="Warm")
    shutdown.start_deadline(sig="SIGTERM", how="Warm")
    time.sleep(0.5)
    assert sent == [], "tasks get the whole grace"
    time.sleep(1.0)
    assert sent == [(os.getpid(), signal.SIGQUIT)], "one SIGQUIT, however many SIGTERMs"


def test_a_stopped_worker_leaves_its_heap_out_of_the_exits_collection() -> None:
    try:
        shutdown.skip_the_last_collection(sender=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()

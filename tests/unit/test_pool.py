"""An idle pool's stop (tasks/pool.py) on a real prefork pool: each process runs its shutdown handlers, says it is done,
and is ended on that message by billiard's own handler, as while the worker runs; none is left to sleep out its end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from billiard.pool import DEATH
from celery.signals import worker_process_shutdown

from tasks.app import app
from tasks.pool import TaskPool


def test_a_stopped_idle_pool_ends_each_process_on_its_death_message_after_its_shutdown_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def mark(pid: int, exitcode: int, **_: Any) -> None:  # runs in each pool process, inherited across the fork
        (tmp_path / str(pid)).write_text(str(exitcode))

    worker_process_shutdown.connect(mark, weak=False)
    pool = TaskPool(2, initargs=(app, "pool-test@localhost"), app=app)
    pool.start()
    try:
        processes = list(pool._pool._pool)
        handler = pool._pool._result_handler
        said: list[Any] = []
        handle = handler.on_state_change
        monkeypatch.setattr(handler, "on_state_change", lambda message: (said.append(message), handle(message)))
        pool.stop()
    finally:
        worker_process_shutdown.disconnect(mark)

    pids = {p.pid for p in processes}
    assert len(pids) == 2 and pool._pool is None
    assert {args[0] for kind, args in said if kind == DEATH} == pids, "each process's end was read and handed to billiard"
    assert [p.exitcode for p in processes] == [0, 0]
    assert {f.name: f.read_text() for f in tmp_path.iterdir()} == {str(pid): "0" for pid in pids}, "shutdown handlers ran first"

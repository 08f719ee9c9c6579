"""The worker's process pool: Celery's prefork pool, except that an idle pool ends its processes at once.

A pool process told to stop runs its shutdown handlers (`worker_process_shutdown`: tasks/tally.py adds its counts),
tells the worker it is done (billiard's DEATH message) and sleeps a second for the worker to end it, which the worker
does on that message (billiard's `on_death`). But stopping, Celery reads its processes' messages only while tasks
still run: an idle pool's processes each sleep out their second, and Celery's stop keeps a timer thread that sleeps
half a second more. That was most of an idle worker's stop, paid by every scale-in of an idle Fargate task and
every local cloud's stop (`make bench`, "Stopping").

Here a pool with nothing to run reads those messages itself and hands them to billiard's own handlers, as its event
loop would, so each process ends as soon as its shutdown handlers are done. A pool still running tasks stops as
Celery stops it: its timer thread keeps the keeper's extensions going while the tasks finish.
"""

from __future__ import annotations

import time
from typing import Any

from billiard.compat import setblocking
from billiard.connection import wait
from billiard.pool import CLOSE, RUN
from celery.concurrency import prefork

# How long an idle pool's processes may take to run their shutdown handlers (a tally's last write) before the stop
# falls back to Celery's own: waiting for them to exit.
IDLE_EXIT_SECONDS = 5.0


def end_when_done(pool: Any, seconds: float = IDLE_EXIT_SECONDS) -> None:
    """Read what a closed pool's processes say until each has exited, handling it as billiard's result handler does:
    a process's DEATH message ends it (`on_death`). Gives up after `seconds`, leaving the rest to exit by themselves."""
    handle = pool._result_handler.on_state_change
    running = {p.sentinel: p for p in pool._pool if p.is_alive()}
    readers = {p.outq._reader: p for p in running.values()}
    for reader in readers:
        setblocking(reader, 1)  # a whole message or nothing: a process writes each message at once
    deadline = time.monotonic() + seconds
    while running and (left := deadline - time.monotonic()) > 0:
        for ready in wait([*running, *readers], timeout=left):
            if ready in running:
                readers.pop(running.pop(ready).outq._reader, None)
            elif ready in readers:
                try:
                    handle(ready.recv())
                except (EOFError, OSError):
                    readers.pop(ready)


class TaskPool(prefork.TaskPool):
    """Celery's prefork pool; stopped idle, it ends its processes as soon as they are done (module docstring)."""

    def on_stop(self) -> None:
        pool = self._pool
        if pool is None or pool._state not in (RUN, CLOSE) or pool._cache:
            super().on_stop()
            return
        pool.close()  # the worker's close step has usually done it already
        pool._stop_task_handler(pool._task_handler)  # each process is told to stop (the join tells them again)
        end_when_done(pool)
        pool.join()
        self._pool = None

"""How a worker stops within its container's stop timeout (Fargate: SIGTERM, then SIGKILL).

SIGTERM starts Celery's warm shutdown: the worker stops receiving, running tasks finish and are
acknowledged, and messages it prefetched are released at once (tasks/broker/release.py). A task still running
after the pool's `shutdown_grace` is cut short: a SIGQUIT starts Celery's cold shutdown, which
cancels it and releases its message to another worker, before the stop timeout's SIGKILL.
Celery's own soft shutdown (`worker_soft_shutdown_timeout`) is not used: it always sleeps its whole
timeout, in a signal handler that keeps finished tasks from being acknowledged meanwhile.

An idle pool's processes end as soon as they are done (tasks/pool.py), and a worker that has stopped exits without
the interpreter's last garbage collection over a heap it is about to drop (half a second of an idle worker's stop).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from typing import Any

from celery.signals import worker_shutdown, worker_shutting_down

from tasks.app import settings

logger = logging.getLogger("dropq.worker")
_deadline: threading.Timer | None = None


def _cut_short(grace: int) -> None:
    logger.warning("tasks still running %ss after SIGTERM: cancelling them; their messages go back to the queue", grace)
    os.kill(os.getpid(), signal.SIGQUIT)


@worker_shutting_down.connect
def start_deadline(sig: str = "", how: str = "", **_: Any) -> None:
    """On a warm shutdown, cancel whatever still runs once the grace period is over."""
    global _deadline
    if how != "Warm" or _deadline is not None:
        return
    grace = settings.shutdown_grace
    _deadline = threading.Timer(grace, _cut_short, args=(grace,))
    _deadline.daemon = True
    _deadline.start()


@worker_shutdown.connect
def skip_the_last_collection(**_: Any) -> None:
    """The worker has stopped (its pool, its connection, its heartbeat): move every object out of the collector's reach,
    so that the interpreter's exit frees them without first walking the whole heap for cycles."""
    gc.freeze()

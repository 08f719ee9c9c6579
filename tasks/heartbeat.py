"""Worker heartbeats in the ledger table: on SQS, Celery's own worker events and `inspect` do not exist."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from celery.worker import state

from dropq.ledger import ledger_for
from tasks.app import settings

logger = logging.getLogger("dropq.worker")
HEARTBEAT_SECONDS = 15
# Tasks per minute are counted over this many seconds of beats.
RATE_WINDOW_SECONDS = 60
_stop = threading.Event()
# The ledger the heartbeats write to, made at start: a client made while the worker stops would add a third of a
# second to every stop.
_ledger: Any = None
_thread: threading.Thread | None = None


class TaskRate:
    """Tasks this worker started per minute, over the last RATE_WINDOW_SECONDS (Celery counts them in `state`)."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float, started: int) -> float:
        self.samples.append((now, started))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW_SECONDS:
            self.samples.popleft()
        then, before = self.samples[0]
        return round((started - before) * 60 / (now - then), 1) if now > then else 0.0


def _beat(hostname: str, info: dict[str, Any], ledger: Any) -> None:
    rate = TaskRate()
    while True:
        try:
            busy = {"tasks_per_minute": rate.sample(time.monotonic(), state.all_total_count[0]), "active": len(state.active_requests)}
            ledger.heartbeat(hostname, info | busy)
        except Exception as exc:  # a missed beat must never take the worker down
            logger.warning("heartbeat for %s failed: %s", hostname, exc)
        if _stop.wait(HEARTBEAT_SECONDS):
            return


@worker_ready.connect
def start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Start beating once the worker consumes."""
    queues = sorted(q.name for q in sender.app.amqp.queues.consume_from.values()) if sender else []
    info = {"pid": os.getpid(), "pool": settings.pool, "queues": queues, "concurrency": sender.controller.concurrency if sender else 0}
    global _ledger, _thread
    _ledger = ledger_for(settings)
    _thread = threading.Thread(target=_beat, args=(sender.hostname, info, _ledger), name="dropq-heartbeat", daemon=True)
    _thread.start()


@worker_shutdown.connect
def stop_heartbeat(sender: Any = None, **_: Any) -> None:
    """Stop beating and remove this worker from the list."""
    _stop.set()
    if _thread is not None:
        _thread.join(timeout=2)  # a beat in flight would put the worker back after it is forgotten
    try:
        (_ledger or ledger_for(settings)).forget_worker(sender.hostname)
    except Exception as exc:
        logger.warning("could not remove worker %s from the ledger: %s", getattr(sender, "hostname", "?"), exc)

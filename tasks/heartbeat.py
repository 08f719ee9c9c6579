"""Worker heartbeats in the ledger table: on SQS, Celery's own worker events and `inspect` do not exist."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from dropq.ledger import ledger_for
from tasks.app import settings

logger = logging.getLogger("dropq.worker")
HEARTBEAT_SECONDS = 15
_stop = threading.Event()


def _beat(hostname: str, info: dict[str, Any]) -> None:
    ledger = ledger_for(settings)
    while True:
        try:
            ledger.heartbeat(hostname, info)
        except Exception as exc:  # a missed beat must never take the worker down
            logger.warning("heartbeat for %s failed: %s", hostname, exc)
        if _stop.wait(HEARTBEAT_SECONDS):
            return


@worker_ready.connect
def start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Start beating once the worker consumes."""
    queues = sorted(q.name for q in sender.app.amqp.queues.consume_from.values()) if sender else []
    info = {"pid": os.getpid(), "queues": queues, "concurrency": sender.controller.concurrency if sender else 0}
    threading.Thread(target=_beat, args=(sender.hostname, info), name="dropq-heartbeat", daemon=True).start()


@worker_shutdown.connect
def stop_heartbeat(sender: Any = None, **_: Any) -> None:
    """Stop beating and remove this worker from the list."""
    _stop.set()
    try:
        ledger_for(settings).forget_worker(sender.hostname)
    except Exception as exc:
        logger.warning("could not remove worker %s from the ledger: %s", getattr(sender, "hostname", "?"), exc)

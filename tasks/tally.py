"""This worker process's outcome counts, added to the ledger's per-minute counts (dropq/counts.py) every few seconds.

One UpdateItem per minute with new outcomes, every FLUSH_SECONDS, per process: the cost grows with the worker
processes, not with the files they finish. Counts a failed add keeps are tried again at the next flush; a
process killed outright (SIGKILL) loses at most its last FLUSH_SECONDS of counts, never a ledger entry.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery.signals import worker_process_shutdown, worker_shutdown

from dropq.counts import Counts, counts_for, minute_of, outcome
from tasks.app import settings

logger = logging.getLogger("dropq.worker")

# Seconds between a process's adds: the dashboard's throughput is this late at most.
FLUSH_SECONDS = 5


class Tally:
    """Outcomes recorded in this process and not yet added, by minute; a thread adds them every `interval` seconds."""

    def __init__(self, counts: Callable[[], Counts], interval: float = FLUSH_SECONDS) -> None:
        self._counts = counts
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: dict[str, Counter[str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, pipeline: str, succeeded: bool, duration_ms: int | None, at: datetime | None = None) -> None:
        """Count one outcome (added within `interval` seconds)."""
        minute = minute_of(at or datetime.now(UTC))
        with self._lock:
            self._pending.setdefault(minute, Counter()).update(outcome(pipeline, succeeded, duration_ms))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dropq-tally", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        """Add every pending minute now; what cannot be added waits for the next flush."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        counts = self._counts()
        for minute, found in pending.items():
            try:
                counts.add(minute, found)
            except Exception as exc:  # DynamoDB unreachable or throttled: kept, and tried again
                logger.warning("could not add the outcome counts of %s (kept for the next try): %s", minute, exc)
                with self._lock:
                    self._pending.setdefault(minute, Counter()).update(found)

    def stop(self) -> None:
        """Stop the thread and add what is pending."""
        self._stop.set()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()


_tallies: dict[int, Tally] = {}
_counts: dict[int, Counts] = {}


def _process_counts() -> Counts:
    pid = os.getpid()
    if pid not in _counts:
        _counts[pid] = counts_for(settings)
    return _counts[pid]


def tally() -> Tally:
    """This process's tally (a forked pool process gets its own: threads do not cross a fork)."""
    pid = os.getpid()
    if pid not in _tallies:
        _tallies[pid] = Tally(lambda: _process_counts())  # looked up at each flush (tests point it elsewhere)
    return _tallies[pid]


def record(pipeline: str, succeeded: bool, duration_ms: int | None) -> None:
    """Count one outcome this process recorded in the ledger."""
    tally().record(pipeline, succeeded, duration_ms)


@worker_process_shutdown.connect
@worker_shutdown.connect
def flush_on_exit(**_: Any) -> None:
    """A pool process (or a solo worker) adds what it counted before it exits."""
    found = _tallies.get(os.getpid())
    if found is not None:
        found.stop()

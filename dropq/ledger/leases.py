"""Holding a claimed file's lease while its work runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dropq.ledger.files import FileStates
from dropq.objects import ObjectRef


@contextmanager
def hold(ledger: FileStates, ref: ObjectRef, owner: str, lease_seconds: float) -> Iterator[threading.Event]:
    """Renew a claimed file's lease every third of its length while the block runs; the event is set if it was lost."""
    lost = threading.Event()
    done = threading.Event()

    def renew() -> None:
        while not done.wait(lease_seconds / 3):
            try:
                if not ledger.renew(ref, owner, lease_seconds):
                    lost.set()
                    return
            except Exception:  # a missed renewal is retried; the lease outlives two of them
                continue

    thread = threading.Thread(target=renew, name="dropq-lease", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        done.set()
        thread.join(timeout=5)

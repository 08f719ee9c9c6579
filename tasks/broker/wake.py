"""Waking the worker's event loop the moment a shutdown starts.

Celery's SIGTERM (warm) and SIGQUIT (cold) handlers only set a flag, which the event loop reads after its poll of
the sockets returns: an idle worker, whose only socket is a long poll with nothing to say, noticed its stop up to a
second later. A pipe registered with the loop, written to by the shutdown signal, makes that poll return at once.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from celery.signals import worker_shutting_down


class Waker:
    """A pipe the event loop (`hub`) reads, written to when a shutdown starts."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        hub.add_reader(self._read, self._drain)
        hub.on_close.add(self._close)
        worker_shutting_down.connect(self.wake, weak=False)

    def wake(self, **_: Any) -> None:
        """Make the event loop's poll return now (safe in a signal handler: one non-blocking write)."""
        with contextlib.suppress(OSError):  # full (it is awake already) or closed (it has stopped)
            os.write(self._write, b"\0")

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._read, 512):
                pass

    def _close(self, _hub: Any) -> None:
        worker_shutting_down.disconnect(self.wake)
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.hub.remove(self._read)
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)

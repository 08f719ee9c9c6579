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
        self._fds: tuple[int, int] | None = os.pipe()
        read, write = self._fds
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        hub.add_reader(read, self._drain)
        hub.on_close.add(self._close)
        worker_shutting_down.connect(self.wake, weak=False)

    def wake(self, **_: Any) -> None:
        """Make the event loop's poll return now (safe in a signal handler: one non-blocking write)."""
        fds = self._fds
        if fds is not None:
            with contextlib.suppress(OSError):  # full: it is awake already
                os.write(fds[1], b"\0")

    def _drain(self) -> None:
        fds = self._fds
        if fds is not None:
            with contextlib.suppress(OSError):
                while os.read(fds[0], 512):
                    pass

    def _close(self, _hub: Any) -> None:
        # Once: the hub is reset on a connection error and closed at the end, and its readers are gone by then.
        fds, self._fds = self._fds, None
        if fds is None:
            return
        self.hub.on_close.discard(self._close)
        worker_shutting_down.disconnect(self.wake)
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

"""Waking the event loop at a shutdown (tasks/broker/wake.py): a worker notices SIGTERM at once, not a poll later."""

from __future__ import annotations

import os
import select

from celery.signals import worker_shutting_down
from kombu.asynchronous import Hub

from tasks.broker.wake import Waker


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_a_shutdown_makes_the_loops_pipe_readable_and_the_loop_drains_it() -> None:
    hub = Hub()
    waker = Waker(hub)
    assert waker._fds is not None
    read = waker._fds[0]
    try:
        assert not readable(read)
        worker_shutting_down.send(sender="w@host", sig="SIGTERM", how="Warm", exitcode=0)
        assert readable(read), "the event loop's poll returns at once"
        waker._drain()
        assert not readable(read)
    finally:
        hub.close()


def test_closing_is_done_once_and_never_closes_descriptors_reused_since() -> None:
    hub = Hub()
    waker = Waker(hub)
    hub.close()
    assert waker._fds is None and waker._close not in hub.on_close
    reused_read, reused_write = os.pipe()  # may take the numbers the waker had
    try:
        waker._close(hub)  # a hub reset, then its close: the second does nothing
        os.fstat(reused_read)
        os.fstat(reused_write)
        worker_shutting_down.send(sender="w@host", sig="SIGTERM", how="Warm", exitcode=0)  # disconnected: nothing written
        assert not readable(reused_read)
    finally:
        os.close(reused_read)
        os.close(reused_write)

"""Waking the event loop at a shutdown (tasks/broker/wake.py): a worker notices SIGTERM at once, not a poll later.

Celery's `worker_shutting_down` is replaced by a recording signal here: sent for real in the test process, it would
also start dropq's shutdown deadline (tasks/shutdown.py), which SIGQUITs the process a grace period later.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable
from typing import Any

import pytest
from kombu.asynchronous import Hub

import tasks.broker.wake as wake_module
from tasks.broker.wake import Waker


class Signal:
    """Celery's signal as the waker uses it: connect, disconnect, and send to whoever is connected."""

    def __init__(self) -> None:
        self.receivers: list[Callable[..., Any]] = []

    def connect(self, receiver: Callable[..., Any], weak: bool = True) -> None:
        self.receivers.append(receiver)

    def disconnect(self, receiver: Callable[..., Any]) -> None:
        self.receivers.remove(receiver)

    def send(self, **kwargs: Any) -> None:
        for receiver in list(self.receivers):
            receiver(**kwargs)


@pytest.fixture
def shutting_down(monkeypatch: pytest.MonkeyPatch) -> Signal:
    signal = Signal()
    monkeypatch.setattr(wake_module, "worker_shutting_down", signal)
    return signal


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_a_shutdown_makes_the_loops_pipe_readable_and_the_loop_drains_it(shutting_down: Signal) -> None:
    hub = Hub()
    waker = Waker(hub)
    assert waker._fds is not None
    read = waker._fds[0]
    try:
        assert not readable(read)
        shutting_down.send(sig="SIGTERM", how="Warm", exitcode=0)
        assert readable(read), "the event loop's poll returns at once"
        waker._drain()
        assert not readable(read)
    finally:
        hub.close()


def test_closing_is_done_once_and_never_closes_descriptors_reused_since(shutting_down: Signal) -> None:
    hub = Hub()
    waker = Waker(hub)
    hub.close()
    assert waker._fds is None and waker._close not in hub.on_close and shutting_down.receivers == []
    reused_read, reused_write = os.pipe()  # may take the numbers the waker had
    try:
        waker._close(hub)  # a hub reset, then its close: the second does nothing
        os.fstat(reused_read)
        os.fstat(reused_write)
        waker.wake()
        assert not readable(reused_read)
    finally:
        os.close(reused_read)
        os.close(reused_write)

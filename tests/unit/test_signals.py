"""A stop asked for by a signal: seen wherever the kernel delivers the signal, with no lock taken in the handler."""

from __future__ import annotations

import os
import signal
import threading

from dropq.signals import StopRequest


def test_a_signal_delivered_to_another_thread_ends_the_main_threads_wait() -> None:
    # `dropq up` hung here: the kernel handed Ctrl-C to one of its threads while the main thread sat in an untimed
    # Event.wait(), which never ran the handler. A wait of sliced sleeps sees it.
    stop = StopRequest()
    before = signal.getsignal(signal.SIGUSR2)
    restore = stop.install((signal.SIGUSR2,))
    parked = threading.Event()
    other = threading.Thread(target=parked.wait, args=(30,))
    other.start()
    try:
        assert other.ident is not None
        threading.Timer(0.2, signal.pthread_kill, (other.ident, signal.SIGUSR2)).start()
        assert stop.wait(timeout=20), "the signal was seen before the timeout"
    finally:
        restore()
        parked.set()
        other.join()
    assert signal.getsignal(signal.SIGUSR2) == before


def test_a_first_ctrl_c_asks_to_stop_and_a_second_interrupts_at_once() -> None:
    before = signal.getsignal(signal.SIGINT)
    stop = StopRequest()
    restore = stop.install((signal.SIGINT,), second_interrupts=True)
    try:
        assert not stop.wait(timeout=0.05)
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.wait(timeout=20) and stop.is_set()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the next Ctrl-C raises KeyboardInterrupt"
    finally:
        restore()
    assert signal.getsignal(signal.SIGINT) == before

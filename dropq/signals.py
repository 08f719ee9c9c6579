"""A stop asked for by a signal (Ctrl-C, SIGTERM), which the main thread waits for without ever hanging.

Two ways a signal handler that sets a `threading.Event` can hang a process for good, both seen in `dropq up` and
`dropq status --watch`:
- the kernel may deliver a process's signal to any of its threads; CPython then runs the Python handler in the main
  thread only once that thread runs bytecode, and a main thread blocked in an untimed `Event.wait()` never does;
- a handler runs between two bytecodes of the main thread, possibly inside `Event.wait()` while it holds the event's
  lock, and `Event.set()` then waits for that lock forever.
So the handler here only sets a flag, and waiting is sleeping in short slices: a signal is acted on within a slice
wherever the kernel delivers it, and no lock is ever taken in a handler.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

# How long the main thread sleeps between two looks at the flag: the most a stop waits for its signal to be seen.
SLICE_SECONDS = 0.1


class StopRequest:
    """Set by SIGINT or SIGTERM once `install`ed, or by `set`; `wait` and `is_set` as a `threading.Event`'s."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until set or `timeout` seconds have passed (forever without one); whether it is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            left = SLICE_SECONDS if deadline is None else min(SLICE_SECONDS, deadline - time.monotonic())
            if left <= 0:
                break
            time.sleep(left)
        return self._set

    def install(
        self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM), *, second_interrupts: bool = False, saying: str | None = None
    ) -> Callable[[], None]:
        """Have `signals` set this request (and print `saying` on stderr); with `second_interrupts`, a second Ctrl-C
        raises KeyboardInterrupt at once. Returns what puts the handlers before back."""

        def handle(signum: int, frame: FrameType | None) -> None:
            self._set = True
            if second_interrupts and signum == signal.SIGINT:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            if saying:
                os.write(sys.stderr.fileno(), f"{saying}\n".encode())  # not print: stderr's buffer may be mid-write

        previous: dict[int, Any] = {sig: signal.signal(sig, handle) for sig in signals}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

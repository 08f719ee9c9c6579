"""A background thread that calls `tick` every `interval` seconds until stopped: the local autoscaler and scheduler, the dashboard."""

from __future__ import annotations

import logging
import threading
from typing import Any, Self

logger = logging.getLogger("dropq")


class Ticker:
    """Calls `tick` every `interval` seconds on a thread of its own; a tick that fails is logged and the next one comes."""

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> Any:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # an endpoint restarting, say: the next tick tries again
                logger.exception("%s: a tick failed", self.name)
            self._stop.wait(self.interval)

    def start(self) -> Self:
        """Tick at once, then every `interval` seconds in the background until `stop`; return self."""
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop ticking (and wait for a tick under way)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

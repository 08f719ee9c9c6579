"""The keeper: while a worker holds SQS messages, it keeps them invisible and the worker's ECS task protected.

One thread per consuming channel (started by tasks/broker/transport.py). Every third of the visibility timeout it
extends the visibility of every message the worker has received and not yet acknowledged (running,
prefetched or waiting for an ETA), so a task may run for an hour on a queue whose messages come back
a minute after a worker crashes. When the worker holds anything it turns on ECS task scale-in
protection, and turns it off once it is idle, so scale-in stops idle workers, not busy ones.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tasks.protection import ProtectionError, TaskProtection

logger = logging.getLogger("dropq.worker")


class Keeper:
    """Extends the visibility of held messages and holds task protection while busy."""

    def __init__(self, channel: Any, protection: TaskProtection | None = None) -> None:
        from tasks.app import settings

        self.channel = channel
        if protection is None and settings.ecs_agent_uri:
            protection = TaskProtection(settings.ecs_agent_uri)
        self.protection = protection
        self.timeouts = {queue.name: queue.visibility_timeout for queue in settings.topology.queues}
        self.interval = min(queue.extend_every for queue in settings.topology.queues)
        self._woken = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dropq-keeper", daemon=True)

    def start(self) -> Keeper:
        self._thread.start()
        return self

    def wake(self) -> None:
        """Look at the held messages now (a message arrived)."""
        self._woken.set()

    def stop(self) -> None:
        """Stop keeping; drop task protection."""
        self._stopped.set()
        self._woken.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._protect(False)

    def _run(self) -> None:
        next_extension = time.monotonic() + self.interval
        while not self._stopped.is_set():
            self._woken.wait(max(0.0, next_extension - time.monotonic()))
            self._woken.clear()
            if self._stopped.is_set():
                return
            try:
                held = self.channel.held()
                if held is None:
                    continue
                self._protect(bool(held))
                if time.monotonic() >= next_extension:
                    next_extension = time.monotonic() + self.interval
                    if held:
                        self._extend(held)
            except Exception:  # the keeper must outlive any one bad tick, or held messages come back mid-task
                logger.exception("the keeper's tick failed; it carries on")

    def _extend(self, held: list[Any]) -> None:
        by_timeout: dict[int, list[Any]] = {}
        for message in held:
            by_timeout.setdefault(self.timeouts.get(message.queue, min(self.timeouts.values())), []).append(message)
        for seconds, messages in by_timeout.items():
            try:
                self.channel.change_visibility(messages, seconds)
            except (ClientError, BotoCoreError, OSError) as exc:
                # Retried at the next tick, a third of the timeout later; a broker outage longer than that
                # lets the messages come back, and the ledger's lease keeps their files from running twice.
                logger.warning("could not extend the visibility of %d held messages: %s", len(messages), exc)

    def _protect(self, busy: bool) -> None:
        if self.protection is None:
            return
        try:
            self.protection.update(busy)
        except ProtectionError as exc:
            logger.warning("%s", exc)

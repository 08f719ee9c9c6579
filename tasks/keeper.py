"""The keeper: while a worker holds SQS messages, it keeps them invisible and the worker's ECS task protected.

One thread per consuming channel (started by tasks/broker/transport.py). Every third of the visibility timeout it
extends the visibility of every message the worker has received and not yet acknowledged (running,
prefetched or waiting for an ETA), so a task may run for an hour on a queue whose messages come back
a minute after a worker crashes. A receive hides what it brings for a few seconds only (tasks/broker/visibility.py):
while the worker holds any message, the keeper looks twice a second for one held past FIRST_EXTENSION_SECONDS, and
extends everything held then. When the worker holds anything it turns on ECS task scale-in
protection, and turns it off once it is idle, so scale-in stops idle workers, not busy ones.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from tasks.protection import ProtectionError, TaskProtection

if TYPE_CHECKING:  # the channel (tasks/broker/transport.py) starts the keeper: no import back at run time
    from tasks.broker.visibility import Held

logger = logging.getLogger("dropq.worker")

# While the worker holds messages, the keeper looks this often for one due its first extension.
FIRST_EXTENSION_CHECK_SECONDS = 0.5


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
        self._next_extension = time.monotonic() + self.interval
        self._extended: set[str] = set()  # receipt handles of the held messages extended at least once
        self.holding = False  # whether the worker held any message at the last tick
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
        while not self._stopped.is_set():
            wait = max(0.0, self._next_extension - time.monotonic())
            self._woken.wait(min(wait, FIRST_EXTENSION_CHECK_SECONDS) if self.holding else wait)
            self._woken.clear()
            if self._stopped.is_set():
                return
            try:
                self.tick(time.monotonic())
            except Exception:  # the keeper must outlive any one bad tick, or held messages come back mid-task
                logger.exception("the keeper's tick failed; it carries on")

    def tick(self, now: float) -> None:
        """Look at what the worker holds: everything held extended when any is due, then protection on or off."""
        held = self.channel.held()
        if held is None:
            self.holding = True  # changed while read: look again at the next check, not an interval later
            return
        self.holding = bool(held)
        self._extended &= {message.receipt_handle for message in held}
        first_due = any(m.receipt_handle not in self._extended and m.due_first_extension(now) for m in held)
        if now >= self._next_extension or first_due:
            # Everything held goes to its queue's timeout at once: one batch, and nothing due again before the next
            # interval. Before protection: an ECS agent slow to answer must not let a first visibility run out.
            self._next_extension = now + self.interval
            self._extended |= self._extend(held)
        self._protect(self.holding)

    def _extend(self, held: list[Held]) -> set[str]:
        """Extend `held` to their queues' visibility timeouts; return the receipt handles of those SQS was asked to change."""
        asked: set[str] = set()
        by_timeout: dict[int, list[Held]] = {}
        for message in held:
            by_timeout.setdefault(self.timeouts.get(message.queue, min(self.timeouts.values())), []).append(message)
        for seconds, messages in by_timeout.items():
            try:
                self.channel.change_visibility(messages, seconds)
                asked |= {message.receipt_handle for message in messages}
            except (ClientError, BotoCoreError, OSError) as exc:
                # Tried again at the next tick (within a second for a first extension, a third of the timeout later
                # for the others); a broker outage longer than their visibility lets the messages come back, and the
                # ledger's lease keeps their files from running twice.
                logger.warning("could not extend the visibility of %d held messages: %s", len(messages), exc)
        return asked

    def _protect(self, busy: bool) -> None:
        if self.protection is None:
            return
        try:
            self.protection.update(busy)
        except ProtectionError as exc:
            logger.warning("%s", exc)

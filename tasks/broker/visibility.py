"""Visibility keeping: the messages a worker holds, their visibility changed in batches, and the keeper that extends them.

kombu knows what a channel holds only as its QoS's private `_delivered` and `_dirty`; the keeper (tasks/keeper.py) reads
them through `held_messages` on its own thread, and extends them with `Visibility.change` every third of their timeout.

A receive hides what it brings for RECEIVE_VISIBILITY_SECONDS only (dropq/topology.py), not the queue's visibility
timeout: a stopping worker cuts its open long poll instead of waiting it out (up to 20 s), and SQS may still hand that
poll a message nobody will read. Such a message is visible again seconds later, not a visibility timeout (a minute)
later. A message the worker still holds FIRST_EXTENSION_SECONDS after it arrived is extended to its queue's timeout
then, with everything else held: most files are done before, so most receives cost no extension.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dropq.topology import SQS_MAX_BATCH

logger = logging.getLogger("dropq.worker")

# A message still held this long after it arrived is extended to its queue's visibility timeout: RECEIVE_VISIBILITY_SECONDS
# leaves the keeper 8 s more, time for one visibility change on a client that gives up after 5 s (connect or read).
FIRST_EXTENSION_SECONDS = 2
# The key under which a received SQS message records when it arrived (time.monotonic()), for the keeper.
RECEIVED = "dropq_received"


@dataclass(frozen=True)
class Held:
    """One message a worker has received and not yet acknowledged."""

    queue: str
    url: str
    receipt_handle: str
    # When it arrived (time.monotonic()); None for one not stamped by `stamp_received`, which needs no early extension.
    received: float | None = None

    def due_first_extension(self, now: float) -> bool:
        """Whether this message has been held long enough that its short first visibility must be extended now."""
        return self.received is not None and now - self.received >= FIRST_EXTENSION_SECONDS


def stamp_received(messages: Iterable[dict[str, Any]], now: float | None = None) -> None:
    """Record on each SQS message (as ReceiveMessage returned it) when it arrived."""
    now = time.monotonic() if now is None else now
    for message in messages:
        message[RECEIVED] = now


def held_of(message: Any) -> Held | None:
    """The SQS message behind a kombu message, or None when it did not come from SQS (nothing to change or delete)."""
    info = message.delivery_info
    sqs_message, url = info.get("sqs_message"), info.get("sqs_queue")
    if not sqs_message or not url:
        return None
    return Held(
        queue=info.get("routing_key") or "", url=url, receipt_handle=sqs_message["ReceiptHandle"], received=sqs_message.get(RECEIVED)
    )


def held_messages(qos: Any) -> list[Held] | None:
    """The messages a QoS holds, not yet acknowledged or rejected (None: changed while read, try again later).

    Called from the keeper's thread while the consuming thread changes the QoS, hence the copies and the retries.
    """
    for _ in range(3):
        try:
            delivered = list(qos._delivered.items())
            # Acknowledged messages stay in `_delivered` until kombu's next flush; `_dirty` names them.
            done = set(qos._dirty)
        except RuntimeError:  # changed by the consuming thread while copied; try again
            continue
        return [h for tag, message in delivered if tag not in done and (h := held_of(message)) is not None]
    return None


def is_busy(qos: Any) -> bool:
    """Whether a QoS holds any message not yet settled: the worker is busy, and its ECS task should be protected."""
    return len(qos._delivered) > len(qos._dirty)


class Visibility:
    """Changes the visibility of held messages, and runs the keeper that extends them while the worker holds any."""

    def __init__(self, new_client: Callable[[], Any]) -> None:
        # The client is made at first use: kombu makes its SQS clients lazily too, and a channel that never
        # consumes never needs one.
        self._new_client = new_client
        self._client: Any = None
        self.keeper: Any = None
        self._busy = False  # holding any message, as the keeper last heard

    @property
    def client(self) -> Any:
        """An SQS client that gives up within seconds, with no retries (kombu's release client): a visibility
        change stuck in botocore's default timeouts would land after the message was meant to be visible."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def change(self, messages: list[Held], seconds: int) -> int:
        """Set the visibility timeout of `messages` (batched per queue, ten at a time); return how many SQS accepted."""
        accepted = 0
        by_url: dict[str, list[Held]] = {}
        for held in messages:
            by_url.setdefault(held.url, []).append(held)
        client = self.client
        for url, items in by_url.items():
            for start in range(0, len(items), SQS_MAX_BATCH):
                chunk = items[start : start + SQS_MAX_BATCH]
                entries = [{"Id": str(i), "ReceiptHandle": h.receipt_handle, "VisibilityTimeout": seconds} for i, h in enumerate(chunk)]
                response = client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
                accepted += len(response.get("Successful", []))
                for failure in response.get("Failed", []):
                    # Usually a message acknowledged meanwhile: its receipt handle is no longer valid.
                    logger.debug("visibility of a message in %s not changed: %s", url, failure.get("Message") or failure.get("Code"))
        return accepted

    def start_keeper(self, new_keeper: Callable[[], Any]) -> bool:
        """Start the keeper unless it runs already; True when it started now (the channel's first consumer)."""
        if self.keeper is not None:
            return False
        self.keeper = new_keeper().start()
        return True

    def on_held(self, busy: bool) -> None:
        """Wake the keeper when the worker turns busy or idle: it turns task protection on or off at once (it extends
        held messages on its own clock)."""
        if self.keeper is not None and busy != self._busy:
            self.keeper.wake()
        self._busy = busy

    def stop_keeper(self) -> None:
        """Stop the keeper, before anything is released: an extension racing a release would hide the message again."""
        keeper, self.keeper = self.keeper, None
        if keeper is not None:
            keeper.stop()

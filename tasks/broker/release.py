"""Giving messages back: a message the worker does not keep is made visible again, never copied.

kombu's SQS transport gives a message back (worker shutdown, a task cancelled or its worker process lost) by sending a
*copy*, while the original stays invisible until its timeout and then runs again. Here its visibility timeout is set to
0 so another worker receives it at once. A message rejected without requeue (not a task, unknown task, undecodable) is
released too when its queue has a dead-letter queue: SQS counts the receive and moves it there after maxReceiveCount,
within seconds instead of maxReceiveCount visibility timeouts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tasks.broker.visibility import Held, Visibility, held_of

logger = logging.getLogger("dropq.worker")


class Release:
    """Makes the messages a channel gives back visible again, through its `Visibility`."""

    def __init__(self, visibility: Visibility, *, has_dead_letter_queue: Callable[[Held], bool]) -> None:
        self.visibility = visibility
        self._has_dead_letter_queue = has_dead_letter_queue

    def release(self, message: Any) -> bool:
        """Make a received message visible again; False when it is not an SQS message or SQS refused."""
        held = held_of(message)
        if held is None:
            return False
        try:
            released = self.visibility.change([held], 0) == 1
        except (ClientError, BotoCoreError, OSError) as exc:
            # It becomes visible again when its visibility timeout expires: delayed, not lost.
            logger.warning("could not release a message of %s: %s", held.url, exc)
            return False
        logger.info("gave a message back to %s: visible to other workers at once", held.queue or held.url)
        return released

    def release_rejected(self, message: Any) -> bool:
        """Release a rejected message whose queue has a dead-letter queue; False when it is left to kombu (deleted)."""
        held = held_of(message)
        if held is None or not self._has_dead_letter_queue(held):
            return False
        logger.warning("message rejected; released so that its queue's redrive policy moves it to the dead-letter queue")
        self.release(message)
        return True

    def give_back(self, url: str, queue: str, messages: Iterable[dict[str, Any]]) -> int:
        """Release at once what a long poll brought while the channel was closing; return how many SQS accepted.

        SQS hands messages to a poll even when the process that opened it is exiting: kept, they would stay hidden until
        the receive's visibility (RECEIVE_VISIBILITY_SECONDS) runs out.
        """
        received = [Held(queue=queue, url=url, receipt_handle=m["ReceiptHandle"]) for m in messages]
        if not received:
            return 0
        try:
            released = self.visibility.change(received, 0)
        except (ClientError, BotoCoreError, OSError) as exc:
            logger.warning("could not give back %d messages received from %s while stopping: %s", len(received), queue, exc)
            return 0
        logger.info("gave back %d of %d messages received from %s while stopping", released, len(received), queue)
        return released

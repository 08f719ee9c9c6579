"""Celery's consumer, with poison messages sent towards the dead-letter queue instead of dropped.

Celery acknowledges (deletes) a message it cannot decode, so it is lost with a log line. Here it is
rejected like an unknown task or a malformed one: tasks/broker/release.py releases a rejected message, SQS counts
each receive, and after the queue's maxReceiveCount it moves the message to the dead-letter queue,
where `dropq dlq list` shows it. A message over MAX_MESSAGE_BYTES is rejected before it is decoded.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.utils.encoding import safe_repr

logger = logging.getLogger("dropq.worker")

# dropq's task messages are about 2 KB; anything far larger is not one of them.
MAX_MESSAGE_BYTES = 64 * 1024


class Consumer(CeleryConsumer):
    """Rejects what it cannot run, so that it ends in the dead-letter queue."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        logger.error(
            "rejected a message that cannot be decoded (%s; content type %s): it goes to the dead-letter queue",
            exc,
            safe_repr(message.content_type),
        )
        message.reject_log_error(logger, self.connection_errors)

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)

        def on_task_received(message: Any) -> Any:
            size = len(message.body or b"")
            if size > MAX_MESSAGE_BYTES:
                logger.error(
                    "rejected a %d-byte message, over the %d-byte limit: it goes to the dead-letter queue", size, MAX_MESSAGE_BYTES
                )
                message.reject_log_error(logger, self.connection_errors)
                return None
            return handle(message)

        return on_task_received

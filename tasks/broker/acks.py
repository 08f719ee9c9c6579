"""Batched acknowledgements: a processed message is deleted in a DeleteMessageBatch with up to nine others.

kombu deletes each acknowledged message with its own DeleteMessage, on the blocking client, in the consuming thread.
Here an acknowledgement waits at most ACK_DELAY seconds for others of its queue, and the batch goes out on the event
loop's HTTP client, like kombu's receives, while the worker goes on. A closing channel (or one without an event loop)
deletes at once instead: nothing would drive the request.

At-least-once holds: a message whose delete is lost (the worker died first) comes back, and the ledger skips a file that
already succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from kombu.asynchronous.aws.sqs.connection import _query_object_encode
from vine import promise

from dropq.topology import SQS_MAX_BATCH
from tasks.broker.visibility import Held

logger = logging.getLogger("dropq.worker")

# Seconds an acknowledged message may wait for nine others to share its DeleteMessageBatch.
ACK_DELAY = 0.2
# Seconds a stopping worker waits for the DeleteMessageBatch requests it has in flight.
ACK_WAIT_SECONDS = 5

Entries = list[dict[str, str]]


class Acks:
    """The acknowledged messages of one channel waiting for their DeleteMessageBatch, and the batches in flight."""

    def __init__(self, *, hub: Any, client: Callable[[], Any], connection: Callable[[str], Any], closing: Callable[[], bool]) -> None:
        self.hub = hub
        self._client = client  # the blocking SQS client (kombu's `sqs()`), for deletes at close
        self._connection = connection  # a queue's asynchronous SQS connection (kombu's `asynsqs`)
        self._closing = closing
        # Queue URL -> acknowledged messages waiting for their DeleteMessageBatch.
        self._pending: dict[str, list[Held]] = {}
        self._timer = False
        self.in_flight = 0  # DeleteMessageBatch requests sent on the event loop and not yet answered

    def add(self, held: Held) -> None:
        """Delete `held` with the next batch of its queue: at once when it fills one, else within ACK_DELAY seconds."""
        pending = self._pending.setdefault(held.url, [])
        pending.append(held)
        if len(pending) >= SQS_MAX_BATCH:
            self.flush(held.url)
        elif not self._timer:
            self._timer = True
            self.hub.call_later(ACK_DELAY, self.flush_all)

    def flush_all(self) -> None:
        """Send every queue's waiting acknowledgements now."""
        self._timer = False
        for url in list(self._pending):
            self.flush(url)

    def flush(self, url: str) -> None:
        """Send the acknowledgements waiting for one queue, ten to a DeleteMessageBatch."""
        pending = self._pending.pop(url, [])
        for start in range(0, len(pending), SQS_MAX_BATCH):
            chunk = pending[start : start + SQS_MAX_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": h.receipt_handle} for i, h in enumerate(chunk)]
            if self._closing() or self.hub is None:
                self._delete_now(url, entries)
            else:
                self._delete_async(url, chunk[0].queue, entries)

    def _delete_now(self, url: str, entries: Entries) -> None:
        try:
            response = self._client().delete_message_batch(QueueUrl=url, Entries=entries)
        except (ClientError, BotoCoreError, OSError) as exc:
            logger.warning("could not delete %d processed messages of %s; they come back and are skipped: %s", len(entries), url, exc)
            return
        _log_failed_deletes(url, response)

    def _delete_async(self, url: str, queue: str, entries: Entries) -> None:
        """DeleteMessageBatch on the event loop's HTTP client: kombu's public `delete_message_batch` would raise an HTTP
        error inside the event loop (tasks/contract.py), so the request is made here and its answer parsed in `_on_deleted`."""
        connection = self._connection(queue)
        params = {"json": {"Entries": entries}, "query": _query_object_encode({"DeleteMessageBatchRequestEntry": entries})}
        self.in_flight += 1
        connection.make_request(
            "DeleteMessageBatch", {}, url, "POST", callback=promise(self._on_deleted, (connection, url, entries)), protocol_params=params
        )

    def _on_deleted(self, connection: Any, url: str, entries: Entries, response: Any) -> None:
        self.in_flight -= 1
        try:
            parsed = connection._on_obj_ready(connection, "DeleteMessageBatch", response)
        except Exception as exc:  # an HTTP or SQS error: raising here would be raised in the event loop
            logger.warning("could not delete %d processed messages of %s; they come back and are skipped: %s", len(entries), url, exc)
            return
        _log_failed_deletes(url, parsed)


def _log_failed_deletes(url: str, response: dict[str, Any]) -> None:
    for failure in response.get("Failed", []):
        logger.warning("a processed message of %s was not deleted (%s); it comes back and is skipped", url, failure.get("Code"))

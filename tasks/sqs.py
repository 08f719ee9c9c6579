"""kombu's SQS transport with the fixes dropq's reliability rests on (`broker_transport` in tasks/config.py).

- A message given back (worker shutdown, a task cancelled or its worker process lost) is released:
  its visibility timeout is set to 0 so another worker receives it at once. kombu's SQS transport
  sends a *copy* instead, while the original stays invisible until its timeout and then runs again.
- A message rejected without requeue (not a task, unknown task, undecodable) is released too when its
  queue has a dead-letter queue: SQS counts the receive and moves it there after maxReceiveCount,
  within seconds instead of maxReceiveCount visibility timeouts.
- While a worker holds messages, a keeper thread extends their visibility (tasks/keeper.py).
- A receive that fails (the endpoint is unreachable) is tried again, instead of ending the polling.
- A worker that holds all it may prefetch polls again the moment a message is settled, instead of
  kombu's next `polling_interval` tick; acknowledgements are deleted ten to a DeleteMessageBatch.
- A task with a countdown or ETA waits in SQS, not in a worker: it is sent with a per-message delay
  (at most `delay_hop_seconds`, SQS allows 15 minutes). One received more than a second before its ETA
  hops: it is sent again with the delay that remains and the copy received is deleted. Celery would
  instead hold it unacknowledged in the worker, past its visibility timeout (run twice) or its worker's life.
- A closing channel waits out its open long polls and releases what they return: SQS hands messages
  to a poll even when the process that opened it is exiting, and they would stay hidden a whole
  visibility timeout.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import select
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import pycurl
from botocore.exceptions import BotoCoreError, ClientError
from celery.worker import state as worker_state
from kombu.asynchronous.aws.sqs.connection import _query_object_encode
from kombu.asynchronous.http import get_client
from kombu.asynchronous.hub import READ, WRITE
from kombu.transport import SQS, virtual
from vine import promise

from dropq.topology import SHUTDOWN_MARGIN, SQS_MAX_BATCH, SQS_MAX_DELAY_SECONDS

logger = logging.getLogger("dropq.worker")

# Seconds an acknowledged message may wait for nine others to share its DeleteMessageBatch.
ACK_DELAY = 0.2
# Seconds a stopping worker waits for the DeleteMessageBatch requests it has in flight.
ACK_WAIT_SECONDS = 5
# At most this long in a cold shutdown (SIGQUIT, tasks/shutdown.py), well within SHUTDOWN_MARGIN.
COLD_SHUTDOWN_WAIT_SECONDS = SHUTDOWN_MARGIN // 3
# A receive still unanswered this long after its long poll should have ended will never be answered (kombu's HTTP
# requests time out after 20 s): its queue is polled again. Checked every POLL_CHECK_SECONDS.
STALE_POLL_SECONDS = 30
POLL_CHECK_SECONDS = 10
# A message due within this many seconds of its receipt is handed to Celery, which holds it until its ETA;
# one due later hops (SQS delays are whole seconds, so a message may arrive up to a second early).
HOLD_SECONDS = 1.0


def seconds_until(eta: Any, now: float) -> float | None:
    """Seconds from `now` (epoch seconds) until a Celery ETA header (ISO 8601); None without a readable one."""
    if not isinstance(eta, str):
        return None
    try:
        moment = datetime.fromisoformat(eta)
    except ValueError:
        return None
    if moment.tzinfo is None:  # Celery writes UTC (enable_utc)
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() - now


def delay_for(remaining: float | None, hop_seconds: int) -> int:
    """The SQS delay of a message due in `remaining` seconds: whole seconds, rounded down, at most one hop."""
    if remaining is None or remaining < 1:
        return 0
    return min(int(remaining), hop_seconds)


def task_headers(body: str) -> dict[str, Any]:
    """The Celery headers of an SQS message body written by kombu (base64 JSON); empty if it has none."""
    try:
        envelope = json.loads(base64.b64decode(body, validate=True))
    except (ValueError, TypeError):
        return {}
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    return headers if isinstance(headers, dict) else {}


@dataclass(frozen=True)
class Held:
    """One message a worker has received and not yet acknowledged."""

    queue: str
    url: str
    receipt_handle: str


def _held(message: Any) -> Held | None:
    info = message.delivery_info
    sqs_message, url = info.get("sqs_message"), info.get("sqs_queue")
    if not sqs_message or not url:
        return None
    return Held(queue=info.get("routing_key") or "", url=url, receipt_handle=sqs_message["ReceiptHandle"])


class QoS(SQS.QoS):
    """Wakes the channel's keeper when what it holds changes, so protection follows busy and idle at once."""

    def append(self, message: Any, delivery_tag: Any) -> None:
        super().append(message, delivery_tag)
        self.channel.on_held()

    def ack(self, delivery_tag: Any) -> None:
        super().ack(delivery_tag)
        self.channel.on_held()

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        super().reject(delivery_tag, requeue=requeue)
        self.channel.on_held()


class Channel(SQS.Channel):
    """An SQS channel that releases what it gives back and keeps what it holds invisible."""

    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keeper: Any = None
        self._visibility_client: Any = None
        # Queue name -> when its open long poll ends at the latest; and whether the channel is closing.
        self._polls: dict[str, float] = {}
        self._closing = False
        # Queues not polled while the worker holds all it may prefetch; and queues whose last receive failed.
        self._parked: set[str] = set()
        self._receive_failed: set[str] = set()
        self._busy = False  # holding any message, as the keeper last heard
        self._poll_check: Any = None
        # Queue URL -> acknowledged messages waiting for their DeleteMessageBatch.
        self._acks: dict[str, list[Held]] = {}
        self._ack_timer = False
        self._deleting = 0  # DeleteMessageBatch requests in flight

    def held(self) -> list[Held] | None:
        """The messages received on this channel and not yet acknowledged or rejected (None: try again later)."""
        for _ in range(3):
            try:
                delivered = list(self.qos._delivered.items())
                # Acknowledged messages stay in `_delivered` until kombu's next flush; `_dirty` names them.
                done = set(self.qos._dirty)
            except RuntimeError:  # changed by the consuming thread while copied; try again
                continue
            return [h for tag, message in delivered if tag not in done and (h := _held(message)) is not None]
        return None

    def visibility_client(self) -> Any:
        """An SQS client that gives up within seconds, with no retries (kombu's release client): a visibility
        change stuck in botocore's default timeouts would land after the message was meant to be visible."""
        if self._visibility_client is None:
            self._visibility_client = self._new_release_client(self.sqs())
        return self._visibility_client

    def change_visibility(self, messages: list[Held], seconds: int) -> int:
        """Set the visibility timeout of `messages` (batched per queue); return how many SQS accepted."""
        accepted = 0
        by_url: dict[str, list[Held]] = {}
        for held in messages:
            by_url.setdefault(held.url, []).append(held)
        client = self.visibility_client()
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

    def release(self, message: Any) -> bool:
        """Make a received message visible again; False when it is not an SQS message or SQS refused.

        Visible at once, except while this channel closes with a long poll of its own still open at SQS:
        that poll would take the message back into a process that is exiting, hiding it for a whole visibility
        timeout. It is then released for the seconds the poll has left, and is visible right after.
        """
        held = _held(message)
        if held is None:
            return False
        delay = math.ceil(self._pending_poll_seconds()) if self._closing else 0
        try:
            released = self.change_visibility([held], delay) == 1
        except (ClientError, BotoCoreError, OSError) as exc:
            # It becomes visible again when its visibility timeout expires: delayed, not lost.
            logger.warning("could not release a message of %s: %s", held.url, exc)
            return False
        logger.info("gave a message back to %s: visible to other workers in %ds", held.queue or held.url, delay)
        return released

    def _pending_poll_seconds(self) -> float:
        """How long the longest ReceiveMessage this channel still has open at SQS may go on."""
        now = time.monotonic()
        return max([0.0, *(until - now for until in self._polls.values())])

    def _get_from_sqs(self, queue_name: str, queue_url: str, connection: Any, count: int = 1, callback: Any = None) -> Any:
        self._polls[queue_name] = time.monotonic() + self.wait_time_seconds + 1
        return super()._get_from_sqs(queue_name, queue_url, connection, count=count, callback=callback)

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        """Acknowledge by deleting in batches: up to ten messages a DeleteMessageBatch, within ACK_DELAY seconds.

        At-least-once holds: a message whose delete is lost (the worker died first) comes back, and the
        ledger skips a file that already succeeded.
        """
        held = _held(self.qos.get(delivery_tag))
        if held is None or self.hub is None:
            super().basic_ack(delivery_tag, multiple)
            return
        virtual.Channel.basic_ack(self, delivery_tag, multiple)  # the QoS bookkeeping, without kombu's DeleteMessage
        pending = self._acks.setdefault(held.url, [])
        pending.append(held)
        if len(pending) >= SQS_MAX_BATCH:
            self._flush_acks(held.url)
        elif not self._ack_timer:
            self._ack_timer = True
            self.hub.call_later(ACK_DELAY, self._flush_all_acks)

    def _flush_all_acks(self) -> None:
        self._ack_timer = False
        for url in list(self._acks):
            self._flush_acks(url)

    def _flush_acks(self, url: str) -> None:
        pending = self._acks.pop(url, [])
        for start in range(0, len(pending), SQS_MAX_BATCH):
            chunk = pending[start : start + SQS_MAX_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": h.receipt_handle} for i, h in enumerate(chunk)]
            if self._closing or self.hub is None:
                self._delete_now(url, entries)
            else:
                self._delete_async(url, chunk[0].queue, entries)

    def _delete_now(self, url: str, entries: list[dict[str, str]]) -> None:
        try:
            response = self.sqs().delete_message_batch(QueueUrl=url, Entries=entries)
        except (ClientError, BotoCoreError, OSError) as exc:
            logger.warning("could not delete %d processed messages of %s; they come back and are skipped: %s", len(entries), url, exc)
            return
        self._log_failed_deletes(url, response)

    def _delete_async(self, url: str, queue: str, entries: list[dict[str, str]]) -> None:
        """DeleteMessageBatch on the event loop's HTTP client, like kombu's receives: the worker goes on meanwhile."""
        connection = self.asynsqs(queue=self.canonical_queue_name(queue) if queue else None)
        params = {"json": {"Entries": entries}, "query": _query_object_encode({"DeleteMessageBatchRequestEntry": entries})}
        self._deleting += 1
        connection.make_request(
            "DeleteMessageBatch", {}, url, "POST", callback=promise(self._on_deleted, (connection, url, entries)), protocol_params=params
        )

    def _on_deleted(self, connection: Any, url: str, entries: list[dict[str, str]], response: Any) -> None:
        self._deleting -= 1
        try:
            parsed = connection._on_obj_ready(connection, "DeleteMessageBatch", response)
        except Exception as exc:  # an HTTP or SQS error: raising here would be raised in the event loop
            logger.warning("could not delete %d processed messages of %s; they come back and are skipped: %s", len(entries), url, exc)
            return
        self._log_failed_deletes(url, parsed)

    @staticmethod
    def _log_failed_deletes(url: str, response: dict[str, Any]) -> None:
        for failure in response.get("Failed", []):
            logger.warning("a processed message of %s was not deleted (%s); it comes back and is skipped", url, failure.get("Code"))

    def _restore(self, message: Any, unwanted_delivery_info: tuple[str, ...] = ("sqs_message", "sqs_queue")) -> None:
        # Never kombu's copy for an SQS message: if the release fails, the visibility timeout brings it back.
        if _held(message) is None:
            super()._restore(message, unwanted_delivery_info)
        else:
            self.release(message)

    def _delete_rejected_message(self, delivery_tag: Any) -> None:
        message = self.qos.get(delivery_tag)
        held = _held(message)
        queue = self.canonical_queue_name(held.queue) if held and held.queue else None
        if held is not None and self._has_redrive_policy(queue, held.url):
            logger.warning("message rejected; released so that its queue's redrive policy moves it to the dead-letter queue")
            self.release(message)
            return
        super()._delete_rejected_message(delivery_tag)

    def _on_messages_ready(self, queue: str, qname: str, messages: Any) -> int:
        name = self.canonical_queue_name(qname)
        self._polls.pop(name, None)
        if not isinstance(messages, dict):
            # A ReceiveMessage that failed (the endpoint is gone: refused, reset, timed out) arrives as a list,
            # on which kombu raises in its event loop and never polls that queue again: the worker lives on
            # and consumes nothing. It polls again after the polling interval instead.
            logger.warning("receiving from %s failed; trying again", qname)
            self._receive_failed.add(name)
            return 0
        if self._closing:
            received = [Held(queue=qname, url=queue, receipt_handle=m["ReceiptHandle"]) for m in messages.get("Messages") or ()]
            if received:
                try:
                    released = self.change_visibility(received, 0)
                except (ClientError, BotoCoreError, OSError) as exc:
                    logger.warning("could not give back %d messages received from %s while stopping: %s", len(received), qname, exc)
                else:
                    logger.info("gave back %d of %d messages received from %s while stopping", released, len(received), qname)
            return 0
        if messages.get("Messages"):
            messages = {**messages, "Messages": self._hop_early(queue, name, messages["Messages"])}
        return super()._on_messages_ready(queue, qname, messages)

    @cached_property
    def delay_hop_seconds(self) -> int:
        """The longest delay one SQS message gets; a longer countdown takes several hops."""
        return max(1, min(SQS_MAX_DELAY_SECONDS, int(self.transport_options.get("delay_hop_seconds", SQS_MAX_DELAY_SECONDS))))

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        properties = message.setdefault("properties", {})
        for stale in ("delay_seconds", "DelaySeconds"):  # a message sent again carries its first delay
            properties.pop(stale, None)
        delay = delay_for(seconds_until((message.get("headers") or {}).get("eta"), time.time()), self.delay_hop_seconds)
        if delay:
            properties["delay_seconds"] = delay
        super()._put(queue, message, **kwargs)

    def _hop_early(self, url: str, name: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send again, with the delay that remains, the messages received over HOLD_SECONDS before their ETA; return the rest."""
        due = []
        for message in messages:
            headers = task_headers(message.get("Body", ""))
            remaining = seconds_until(headers.get("eta"), time.time())
            if remaining is None or remaining <= HOLD_SECONDS:
                due.append(message)
                continue
            delay = delay_for(remaining, self.delay_hop_seconds)
            sqs = self.sqs(queue=name)
            try:
                sqs.send_message(QueueUrl=url, MessageBody=message["Body"], DelaySeconds=delay)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            except (ClientError, BotoCoreError) as exc:
                # The received copy comes back after its visibility timeout and hops then; a copy sent twice runs once (the ledger).
                logger.warning("a delayed message of %s could not hop (%s); it comes back to try again", name, exc)
                continue
            logger.info("task %s is due in %.0fs: hopped, back in %ds", headers.get("id"), remaining, delay)
        return due

    def _may_receive(self) -> bool:
        """Whether to receive now: when a whole batch fits in the prefetch window, or the worker holds nothing."""
        room = self.qos.can_consume_max_estimate()
        if room is None:  # no prefetch limit
            return True
        return room >= self.receive_batch or (room > 0 and not self.qos._delivered.keys() - self.qos._dirty)

    @cached_property
    def receive_batch(self) -> int:
        """Messages a receive should bring (the worker pool's prefetch, at most 10); fewer cost more requests per task."""
        return max(1, min(SQS_MAX_BATCH, int(self.transport_options.get("receive_batch", SQS_MAX_BATCH))))

    def _schedule_queue(self, queue: str) -> None:
        # kombu receives whatever fits, and checks a full worker again every polling interval. dropq waits
        # for room for a whole batch, woken when a message is settled (`on_held`): fewer, fuller receives.
        if queue in self._active_queues and not self._may_receive():
            self._parked.add(queue)
            return
        super()._schedule_queue(queue)

    def _loop1(self, queue: str, messages_fetched: Any = None) -> None:
        # The next receive right away (an empty long poll waited already), or after the polling interval when it failed.
        name = self.canonical_queue_name(queue)
        if name in self._receive_failed:
            self._receive_failed.discard(name)
            self.hub.call_later(self.connection.polling_interval, self._schedule_queue, queue)
        else:
            self.hub.call_soon(self._schedule_queue, queue)

    def basic_consume(self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, *args: Any, **kwargs: Any) -> Any:
        if self.keeper is None:
            from tasks.keeper import Keeper

            self.keeper = Keeper(self).start()
            if self.hub is not None:
                self._guard_hub_close()
                self._poll_check = self.hub.call_repeatedly(POLL_CHECK_SECONDS, self._check_polls)
        return super().basic_consume(queue, no_ack, callback, consumer_tag, *args, **kwargs)

    def on_held(self) -> None:
        """A message was received or settled: poll the parked queues if there is room, and wake the keeper when
        the worker turns busy or idle (it turns task protection on or off; it extends held messages on its own clock)."""
        busy = len(self.qos._delivered) > len(self.qos._dirty)
        if self.keeper is not None and busy != self._busy:
            self.keeper.wake()
        self._busy = busy
        if self._parked and self.hub is not None and not self._closing and self._may_receive():
            parked, self._parked = self._parked, set()
            for queue in parked:
                self.hub.call_soon(self._schedule_queue, queue)

    def _check_polls(self) -> None:
        """Poll again a queue whose receive was never answered: otherwise the worker lives on and consumes nothing.

        Seen once in the broker outage test: a ReceiveMessage cut by the outage whose callback never came.
        """
        now = time.monotonic()
        for queue in list(self._active_queues):
            name = self.canonical_queue_name(queue)
            until = self._polls.get(name)
            if until is not None and now > until + STALE_POLL_SECONDS and not self._closing:
                logger.warning("a receive from %s was never answered; polling it again", queue)
                del self._polls[name]
                self._schedule_queue(queue)

    def _guard_hub_close(self) -> None:
        """Have the worker's event loop wait out this channel's open long polls when it closes.

        The loop (hub) closes before the channel, and closes its HTTP client with it: an open ReceiveMessage is
        cut, but SQS still hands it messages, which then stay hidden for a visibility timeout. So the hub's
        close first drives the client until the polls return (at most one long poll's wait), releasing what
        they bring (`_on_messages_ready`), then closes the client as kombu would.
        """
        client = get_client(self.hub)
        close_client = client._on_hub_close
        self.hub.on_close.discard(close_client)

        def on_hub_close(hub: Any) -> None:
            if self._poll_check is not None:
                self._poll_check.cancel()
            try:
                self._flush_all_acks()  # still asynchronous: the loop below sends them
                self._closing = True
                self._wait_out_polls(client)
            finally:
                close_client(hub)

        self.hub.on_close.add(on_hub_close)

    def _wait_out_polls(self, client: Any) -> None:
        # kombu's CurlClient, driven by hand: the hub has unregistered its sockets by now.
        wait = max(self._pending_poll_seconds(), ACK_WAIT_SECONDS if self._deleting else 0)
        if worker_state.should_terminate not in (None, False):
            # Cold shutdown: the stop timeout's SIGKILL is at most SHUTDOWN_MARGIN away. What an unfinished poll
            # brings stays hidden a visibility timeout; the messages held are released after it (`release`).
            wait = min(wait, COLD_SHUTDOWN_WAIT_SECONDS)
        deadline = time.monotonic() + wait
        if self._polls and not client._closed:
            logger.info("stopping: waiting up to %.0fs for %d open long polls to return", deadline - time.monotonic(), len(self._polls))
        while (self._polls or self._deleting) and not client._closed and (left := deadline - time.monotonic()) > 0:
            try:
                readers = [fd for fd, events in client._fds.items() if events & READ]
                writers = [fd for fd, events in client._fds.items() if events & WRITE]
                if readers or writers:
                    select.select(readers, writers, [], min(left, 1.0))
                else:
                    time.sleep(min(left, 0.05))
                while True:
                    try:
                        status, _ = client._multi.socket_all()
                    except pycurl.error as exc:
                        status = exc.args[0]
                    if status != pycurl.E_CALL_MULTI_PERFORM:
                        break
                client._process_pending_requests()
            except Exception as exc:  # what is held is still released at close, delayed past the polls
                logger.warning("could not wait out the open long polls: %s", exc)
                return

    def close(self) -> None:
        # The keeper stops first: an extension racing the release below would hide a message again.
        keeper, self.keeper = self.keeper, None
        if keeper is not None:
            keeper.stop()
        self._closing = True
        self._flush_all_acks()
        super().close()  # gives back (releases) whatever is still held


class Transport(SQS.Transport):
    """The SQS transport with dropq's channel."""

    Channel = Channel

"""kombu's SQS transport with dropq's fixes: the QoS, Channel and Transport that Celery loads (tasks/config.py).

Each override here is a thin method kombu calls, handing its job to a collaborator with its own state: `Acks`
(acks.py), `Polls` (polls.py), `Delays` (delays.py), `Visibility` (visibility.py) and `Release` (release.py). The private
kombu methods overridden or called are listed in tasks/contract.py, which checks them at worker start.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from kombu.transport import SQS, virtual

from dropq.topology import RECEIVE_VISIBILITY_SECONDS
from tasks.broker.acks import Acks
from tasks.broker.delays import Delays, hop_seconds
from tasks.broker.polls import POLL_CHECK_SECONDS, Polls, before_hub_closes, may_receive, receive_batch
from tasks.broker.release import Release
from tasks.broker.visibility import Held, Visibility, held_messages, held_of, is_busy, stamp_received
from tasks.broker.wake import Waker


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
        # Whether the channel is closing: acknowledgements are then deleted at once, and what polls bring is given back.
        self._closing = False
        self._poll_check: Any = None
        self.polls = Polls()
        self.visibility = Visibility(lambda: self._new_release_client(self.sqs()))
        self.acks = Acks(hub=self.hub, client=self.sqs, connection=self._async_connection, closing=lambda: self._closing)
        self.giving_back = Release(self.visibility, has_dead_letter_queue=self._has_dead_letter_queue)

    # What the keeper (tasks/keeper.py) calls, from its own thread.

    def held(self) -> list[Held] | None:
        """The messages received on this channel and not yet acknowledged or rejected (None: try again later)."""
        return held_messages(self.qos)

    def change_visibility(self, messages: list[Held], seconds: int) -> int:
        """Set the visibility timeout of `messages` (batched per queue); return how many SQS accepted."""
        return self.visibility.change(messages, seconds)

    # Giving back (release.py).

    def release(self, message: Any) -> bool:
        """Make a received message visible again; False when it is not an SQS message or SQS refused."""
        return self.giving_back.release(message)

    def _has_dead_letter_queue(self, held: Held) -> bool:
        return self._has_redrive_policy(self.canonical_queue_name(held.queue) if held.queue else None, held.url)

    def _restore(self, message: Any, unwanted_delivery_info: tuple[str, ...] = ("sqs_message", "sqs_queue")) -> None:
        # Never kombu's copy for an SQS message: if the release fails, the visibility timeout brings it back.
        if held_of(message) is None:
            super()._restore(message, unwanted_delivery_info)
        else:
            self.release(message)

    def _delete_rejected_message(self, delivery_tag: Any) -> None:
        if not self.giving_back.release_rejected(self.qos.get(delivery_tag)):
            super()._delete_rejected_message(delivery_tag)

    # Acknowledgements (acks.py).

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        """Acknowledge by deleting in batches: up to ten messages a DeleteMessageBatch, within ACK_DELAY seconds."""
        held = held_of(self.qos.get(delivery_tag))
        if held is None or self.hub is None:
            super().basic_ack(delivery_tag, multiple)
            return
        virtual.Channel.basic_ack(self, delivery_tag, multiple)  # the QoS bookkeeping, without kombu's DeleteMessage
        self.acks.add(held)

    def _async_connection(self, queue: str) -> Any:
        return self.asynsqs(queue=self.canonical_queue_name(queue) if queue else None)

    # Delays (delays.py).

    @cached_property
    def delays(self) -> Delays:
        """Countdowns as SQS delays, hops of at most the `delay_hop_seconds` transport option."""
        return Delays(hop_seconds(self.transport_options), sqs=lambda name: self.sqs(queue=name))

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        self.delays.set_delay(message)
        super()._put(queue, message, **kwargs)

    # Polls (polls.py).

    @cached_property
    def receive_batch(self) -> int:
        """Messages a receive should bring (the worker pool's prefetch, at most 10)."""
        return receive_batch(self.transport_options)

    def _get_from_sqs(self, queue_name: str, queue_url: str, connection: Any, count: int = 1, callback: Any = None) -> Any:
        # kombu's receive, hiding what it brings for seconds only (visibility.py): a closing channel may cut it.
        self.polls.opened(queue_name, self.wait_time_seconds)
        return connection.receive_message(
            queue_name,
            queue_url,
            number_messages=count,
            visibility_timeout=RECEIVE_VISIBILITY_SECONDS,
            wait_time_seconds=self.wait_time_seconds,
            callback=callback,
        )

    def _on_messages_ready(self, queue: str, qname: str, messages: Any) -> int:
        name = self.canonical_queue_name(qname)
        # A ReceiveMessage that failed (the endpoint is gone: refused, reset, timed out) arrives as a list, on which
        # kombu raises in its event loop and never polls that queue again: the worker lives on and consumes nothing.
        # It polls again after the polling interval instead (`_loop1`).
        ok = isinstance(messages, dict)
        self.polls.answered(name, ok, qname)
        if not ok:
            return 0
        if self._closing:
            self.giving_back.give_back(queue, qname, messages.get("Messages") or ())
            return 0
        if messages.get("Messages"):
            stamp_received(messages["Messages"])
            messages = {**messages, "Messages": self.delays.hop_early(queue, name, messages["Messages"])}
        return super()._on_messages_ready(queue, qname, messages)

    def _may_receive(self) -> bool:
        return may_receive(self.qos, self.receive_batch)

    def _schedule_queue(self, queue: str) -> None:
        # kombu receives whatever fits, and checks a full worker again every polling interval. dropq waits
        # for room for a whole batch, woken when a message is settled (`on_held`): fewer, fuller receives.
        if queue in self._active_queues and not self._may_receive():
            self.polls.park(queue)
            return
        super()._schedule_queue(queue)

    def _loop1(self, queue: str, messages_fetched: Any = None) -> None:
        # The next receive right away (an empty long poll waited already), or after the polling interval when it failed.
        if self.polls.retry_later(self.canonical_queue_name(queue)):
            self.hub.call_later(self.connection.polling_interval, self._schedule_queue, queue)
        else:
            self.hub.call_soon(self._schedule_queue, queue)

    def _check_polls(self) -> None:
        """Poll again a queue whose receive was never answered: otherwise the worker lives on and consumes nothing."""
        if self._closing:
            return
        for queue in self.polls.take_stale({queue: self.canonical_queue_name(queue) for queue in list(self._active_queues)}):
            self._schedule_queue(queue)

    def on_held(self) -> None:
        """A message was received or settled: tell the keeper (visibility.py), and poll the parked queues if there is room."""
        self.visibility.on_held(is_busy(self.qos))
        if self.polls.parked and self.hub is not None and not self._closing and self._may_receive():
            for queue in self.polls.unpark():
                self.hub.call_soon(self._schedule_queue, queue)

    # Consuming and closing.

    def basic_consume(self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, *args: Any, **kwargs: Any) -> Any:
        from tasks.keeper import Keeper  # at first consume: it reads the worker's settings (tasks/app.py)

        if self.visibility.start_keeper(lambda: Keeper(self)) and self.hub is not None:
            Waker(self.hub)
            before_hub_closes(self.hub, self._on_hub_close)
            self._poll_check = self.hub.call_repeatedly(POLL_CHECK_SECONDS, self._check_polls)
        return super().basic_consume(queue, no_ack, callback, consumer_tag, *args, **kwargs)

    def _on_hub_close(self, client: Any) -> None:
        # The worker's event loop is closing, before this channel: its open long polls are cut with the client, and
        # the deletes it has in flight are waited for (polls.py).
        if self._poll_check is not None:
            self._poll_check.cancel()
        self.acks.flush_all()  # still asynchronous: waiting for the deletes sends them
        self._closing = True
        self.polls.wait_for_deletes(client, self.acks)

    def close(self) -> None:
        # The keeper stops first: an extension racing the release below would hide a message again.
        self.visibility.stop_keeper()
        self._closing = True
        self.acks.flush_all()
        super().close()  # gives back (releases) whatever is still held


class Transport(SQS.Transport):
    """The SQS transport with dropq's channel."""

    Channel = Channel

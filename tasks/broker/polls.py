"""The channel's long polls: which are open and until when, which queues wait for room, and waiting them out at close.

- A worker that holds all it may prefetch parks its queues and polls them again the moment a message is settled,
  instead of kombu's next `polling_interval` tick, and only when a whole batch fits: fewer, fuller receives.
- A receive that fails (the endpoint is unreachable) is tried again after the polling interval, and one never answered
  is polled again after STALE_POLL_SECONDS, instead of the polling ending while the worker lives on.
- A closing channel waits out its open long polls (driving the event loop's HTTP client by hand) and releases what they
  return: SQS hands messages to a poll even when the process that opened it is exiting, and they would stay hidden a
  whole visibility timeout.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable, Mapping
from typing import Any

import pycurl
from celery.worker import state as worker_state
from kombu.asynchronous.http import get_client
from kombu.asynchronous.hub import READ, WRITE

from dropq.topology import SHUTDOWN_MARGIN, SQS_MAX_BATCH
from tasks.broker.acks import ACK_WAIT_SECONDS, Acks

logger = logging.getLogger("dropq.worker")

# At most this long in a cold shutdown (SIGQUIT, tasks/shutdown.py), well within SHUTDOWN_MARGIN.
COLD_SHUTDOWN_WAIT_SECONDS = SHUTDOWN_MARGIN // 3
# A receive still unanswered this long after its long poll should have ended will never be answered (kombu's HTTP
# requests time out after 20 s): its queue is polled again. Checked every POLL_CHECK_SECONDS.
STALE_POLL_SECONDS = 30
POLL_CHECK_SECONDS = 10


def receive_batch(transport_options: Mapping[str, Any]) -> int:
    """Messages a receive should bring (the `receive_batch` option, the pool's prefetch, at most 10); fewer cost more
    requests per task."""
    return max(1, min(SQS_MAX_BATCH, int(transport_options.get("receive_batch", SQS_MAX_BATCH))))


def may_receive(qos: Any, batch: int) -> bool:
    """Whether to receive now: when a whole batch fits in the prefetch window, or the worker holds nothing."""
    room = qos.can_consume_max_estimate()
    if room is None:  # no prefetch limit
        return True
    return room >= batch or (room > 0 and not qos._delivered.keys() - qos._dirty)


class Polls:
    """One channel's polling state: its open long polls, its parked queues, and its queues whose last receive failed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Queue name -> when its open long poll ends at the latest.
        self.open: dict[str, float] = {}
        # Queues not polled while the worker holds all it may prefetch; and queues whose last receive failed.
        self.parked: set[str] = set()
        self.receive_failed: set[str] = set()

    def opened(self, name: str, wait_seconds: float) -> None:
        """A ReceiveMessage of queue `name` was sent: it ends within `wait_seconds` (and a second for the answer)."""
        self.open[name] = self._clock() + wait_seconds + 1

    def answered(self, name: str, ok: bool, queue: str | None = None) -> None:
        """The receive of queue `name` (`queue` as the worker names it) was answered; one that failed has its queue polled
        again later (`retry_later`)."""
        self.open.pop(name, None)
        if not ok:
            logger.warning("receiving from %s failed; trying again", queue or name)
            self.receive_failed.add(name)

    def retry_later(self, name: str) -> bool:
        """Whether the next receive of queue `name` waits the polling interval (its last one failed); forgets that it did."""
        failed = name in self.receive_failed
        self.receive_failed.discard(name)
        return failed

    def park(self, queue: str) -> None:
        """Poll `queue` again only once the worker has room (`unpark`)."""
        self.parked.add(queue)

    def unpark(self) -> set[str]:
        """The parked queues, to poll now; none stay parked."""
        parked, self.parked = self.parked, set()
        return parked

    def pending_seconds(self) -> float:
        """How long the longest ReceiveMessage this channel still has open at SQS may go on."""
        now = self._clock()
        return max([0.0, *(until - now for until in self.open.values())])

    def take_stale(self, names: Mapping[str, str]) -> list[str]:
        """The queues (of `names`: queue -> its canonical name) whose receive was never answered, forgotten so that they
        are polled again.

        Seen once in the broker outage test: a ReceiveMessage cut by the outage whose callback never came.
        """
        now = self._clock()
        stale = []
        for queue, name in names.items():
            until = self.open.get(name)
            if until is not None and now > until + STALE_POLL_SECONDS:
                logger.warning("a receive from %s was never answered; polling it again", queue)
                del self.open[name]
                stale.append(queue)
        return stale

    def wait_out(self, client: Any, acks: Acks) -> None:
        """Drive the event loop's HTTP client until the open polls and the deletes in flight have returned, or time is up.

        At most one long poll's wait (ACK_WAIT_SECONDS for deletes alone), and less in a cold shutdown: the stop
        timeout's SIGKILL is at most SHUTDOWN_MARGIN away. What an unfinished poll brings stays hidden a visibility
        timeout; the messages held are released after it (release.py).
        """
        wait = max(self.pending_seconds(), ACK_WAIT_SECONDS if acks.in_flight else 0)
        if worker_state.should_terminate not in (None, False):
            wait = min(wait, COLD_SHUTDOWN_WAIT_SECONDS)
        deadline = time.monotonic() + wait
        if self.open and not client._closed:
            logger.info("stopping: waiting up to %.0fs for %d open long polls to return", deadline - time.monotonic(), len(self.open))
        _drive(client, deadline, lambda: bool(self.open or acks.in_flight))


def _drive(client: Any, deadline: float, waiting: Callable[[], bool]) -> None:
    """kombu's CurlClient, driven by hand while `waiting()` and before `deadline`: the hub has unregistered its sockets."""
    while waiting() and not client._closed and (left := deadline - time.monotonic()) > 0:
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


def before_hub_closes(hub: Any, before: Callable[[Any], None]) -> None:
    """Have the worker's event loop (hub) call `before(client)`, with its HTTP client still open, when it closes.

    The hub closes before the channel, and closes its HTTP client with it: an open ReceiveMessage is cut, but SQS still
    hands it messages, which then stay hidden for a visibility timeout. So the hub's close first runs `before` (which
    waits out the polls, `Polls.wait_out`), then closes the client as kombu would, even when `before` raised.
    """
    client = get_client(hub)
    close_client = client._on_hub_close
    hub.on_close.discard(close_client)

    def on_hub_close(closing_hub: Any) -> None:
        try:
            before(client)
        finally:
            close_client(closing_hub)

    hub.on_close.add(on_hub_close)

"""The channel's long polls: which are open and until when, which queues wait for room, and waiting them out at close.

- A worker that holds all it may prefetch parks its queues and polls them again the moment a message is settled,
  instead of kombu's next `polling_interval` tick, and only when a whole batch fits: fewer, fuller receives.
- A receive that fails (the endpoint is unreachable) is tried again after the polling interval, and one never answered
  is polled again after STALE_POLL_SECONDS, instead of the polling ending while the worker lives on.
- A closing channel cuts its open long polls: an idle worker stops within a second or two of SIGTERM instead of
  waiting up to 20 s for them. SQS may still hand a cut poll a message (it does not notice that the client went), but
  a receive hides what it brings for RECEIVE_VISIBILITY_SECONDS only (visibility.py), so such a message is back in
  seconds, not a visibility timeout later. The channel still waits for its deletes in flight (driving the event
  loop's HTTP client by hand), and gives back at once what a poll answered meanwhile (release.py).
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

from dropq.topology import RECEIVE_VISIBILITY_SECONDS as RECEIVE_VISIBILITY
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

    def wait_for_deletes(self, client: Any, acks: Acks) -> None:
        """Drive the event loop's HTTP client until the deletes in flight have returned, or time is up.

        At most ACK_WAIT_SECONDS, and less in a cold shutdown: the stop timeout's SIGKILL is at most SHUTDOWN_MARGIN
        away. Open long polls are not waited for: they are cut when the client closes. A delete that never returns
        leaves its message to come back, and the ledger skips a file that already succeeded.
        """
        wait = ACK_WAIT_SECONDS
        if worker_state.should_terminate not in (None, False):
            wait = min(wait, COLD_SHUTDOWN_WAIT_SECONDS)
        if self.open:
            cut = len(self.open)
            logger.info("stopping: %d open long polls cut (what SQS hands them is visible again within %ds)", cut, RECEIVE_VISIBILITY)
        _drive(client, time.monotonic() + wait, lambda: acks.in_flight > 0)


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
        except Exception as exc:  # a delete that never returns leaves its message to come back, and to be skipped
            logger.warning("could not wait for the deletes in flight: %s", exc)
            return


def before_hub_closes(hub: Any, before: Callable[[Any], None]) -> None:
    """Have the worker's event loop (hub) call `before(client)`, with its HTTP client still open, when it closes.

    The hub closes before the channel, and closes its HTTP client with it, which would cut the DeleteMessageBatch
    requests still in flight. So the hub's close first runs `before` (which waits for them, `Polls.wait_for_deletes`),
    then closes the client as kombu would, even when `before` raised.
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

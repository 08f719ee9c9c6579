"""Long polls (tasks/broker/polls.py): open polls, parked queues, failed or lost receives, and waiting for deletes at close."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from celery.worker import state as worker_state

import tasks.broker.polls as polls_module
from dropq.topology import RECEIVE_VISIBILITY_SECONDS
from tasks.broker.acks import Acks
from tasks.broker.polls import STALE_POLL_SECONDS, Polls, before_hub_closes, may_receive, receive_batch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_receive_has_its_queue_polled_again_after_the_interval_once(caplog: pytest.LogCaptureFixture) -> None:
    polls = Polls(Clock())
    polls.opened("dropq-default", 20)
    polls.answered("dropq-default", ok=False, queue="default")
    assert polls.open == {} and "receiving from default failed; trying again" in caplog.text
    assert polls.retry_later("dropq-default")
    assert not polls.retry_later("dropq-default"), "the receive after next starts at once again"
    polls.answered("dropq-heavy", ok=True)
    assert not polls.retry_later("dropq-heavy")


def test_parked_queues_are_all_unparked_together() -> None:
    polls = Polls(Clock())
    polls.park("default")
    polls.park("urgent")
    polls.park("default")
    assert polls.unpark() == {"default", "urgent"}
    assert polls.parked == set() and polls.unpark() == set()


def test_a_receive_never_answered_is_polled_again_only_once_stale() -> None:
    clock = Clock()
    polls = Polls(clock)
    polls.opened("dropq-default", 20)
    polls.opened("dropq-heavy", 20)
    names = {"default": "dropq-default", "heavy": "dropq-heavy", "urgent": "dropq-urgent"}
    clock.now += 21 + STALE_POLL_SECONDS
    assert polls.take_stale(names) == [], "not yet: kombu's request may still time out"
    polls.opened("dropq-heavy", 20)  # answered and polled again meanwhile
    clock.now += 0.5
    assert polls.take_stale(names) == ["default"]
    assert set(polls.open) == {"dropq-heavy"}, "forgotten, so that it is polled again"
    assert polls.take_stale(names) == []


def qos(room: int | None, delivered: set[int], dirty: set[int]) -> Any:
    return SimpleNamespace(can_consume_max_estimate=lambda: room, _delivered=dict.fromkeys(delivered), _dirty=dirty)


def test_a_worker_receives_when_a_whole_batch_fits_or_it_holds_nothing() -> None:
    assert may_receive(qos(None, {1}, set()), 10), "no prefetch limit"
    assert may_receive(qos(10, {1}, set()), 10)
    assert not may_receive(qos(9, {1}, set()), 10), "room for nine: wait for a full batch"
    assert may_receive(qos(3, {1, 2}, {1, 2}), 10), "holding only settled messages: receive what fits"
    assert not may_receive(qos(0, set(), set()), 10)


def test_the_receive_batch_is_the_transport_option_within_sqs_bounds() -> None:
    assert receive_batch({}) == 10
    assert receive_batch({"receive_batch": 4}) == 4
    assert receive_batch({"receive_batch": 50}) == 10
    assert receive_batch({"receive_batch": 0}) == 1


class FakeCurlClient:
    """kombu's CurlClient as a closing channel drives it: no sockets; each pass answers what is due."""

    def __init__(self, on_pass: Any = None) -> None:
        self._closed = False
        self._fds: dict[int, int] = {}
        self.passes = 0
        self._on_pass = on_pass
        self._multi = SimpleNamespace(socket_all=lambda: (0, 0))

    def _process_pending_requests(self) -> None:
        self.passes += 1
        if self._on_pass is not None:
            self._on_pass(self.passes)


def idle_acks(in_flight: int = 0) -> Acks:
    acks = Acks(hub=None, client=lambda: None, connection=lambda queue: None, closing=lambda: True)
    acks.in_flight = in_flight
    return acks


def test_a_closing_channel_cuts_its_open_polls_and_drives_the_client_until_its_deletes_return(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="dropq.worker")
    polls = Polls()
    polls.opened("dropq-default", 20)
    acks = idle_acks(in_flight=1)
    client = FakeCurlClient(on_pass=lambda n: n == 2 and setattr(acks, "in_flight", 0))

    started = time.monotonic()
    polls.wait_for_deletes(client, acks)

    assert client.passes == 2 and time.monotonic() - started < 5
    assert f"1 open long polls cut (what SQS hands them is visible again within {RECEIVE_VISIBILITY_SECONDS}s)" in caplog.text


def test_with_no_delete_in_flight_a_closing_channel_waits_for_nothing() -> None:
    polls = Polls()
    polls.opened("dropq-default", 20)
    client = FakeCurlClient()
    started = time.monotonic()
    polls.wait_for_deletes(client, idle_acks())
    assert client.passes == 0 and time.monotonic() - started < 0.5, "the open poll is not waited out"


def test_waiting_for_deletes_ends_at_the_deadline_when_nothing_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(polls_module, "ACK_WAIT_SECONDS", 1)
    client = FakeCurlClient()
    started = time.monotonic()
    Polls().wait_for_deletes(client, idle_acks(in_flight=1))
    assert 0.8 < time.monotonic() - started < 3 and client.passes > 1


def test_a_cold_shutdown_waits_no_longer_than_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_state, "should_terminate", True)
    monkeypatch.setattr(polls_module, "COLD_SHUTDOWN_WAIT_SECONDS", 0)
    client = FakeCurlClient()
    started = time.monotonic()
    Polls().wait_for_deletes(client, idle_acks(in_flight=1))
    assert client.passes == 0 and time.monotonic() - started < 1


def test_a_client_that_fails_while_driven_ends_the_wait_without_raising() -> None:
    def broken(_: int) -> None:
        raise OSError("bad file descriptor")

    client = FakeCurlClient(on_pass=broken)
    Polls().wait_for_deletes(client, idle_acks(in_flight=1))
    assert client.passes == 1


class FakeHub:
    def __init__(self) -> None:
        self.on_close: set[Any] = set()


def test_the_hubs_close_runs_the_wait_first_and_closes_the_client_even_when_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    hub, order = FakeHub(), []
    client = SimpleNamespace(_on_hub_close=lambda closing_hub: order.append(("closed", closing_hub)))
    hub.on_close.add(client._on_hub_close)
    monkeypatch.setattr(polls_module, "get_client", lambda given: client if given is hub else None)

    def before(given: Any) -> None:
        order.append(("before", given))
        raise RuntimeError("the wait failed")

    before_hub_closes(hub, before)

    (on_close,) = hub.on_close
    assert on_close is not client._on_hub_close, "kombu's own close is replaced, not run twice"
    with pytest.raises(RuntimeError):
        on_close(hub)
    assert order == [("before", client), ("closed", hub)]

"""Batched acknowledgements (tasks/broker/acks.py): ten to a DeleteMessageBatch, on the event loop, or at once when closing."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from tasks.broker.acks import ACK_DELAY, Acks
from tasks.broker.visibility import Held
from tests.unit.fake_sqs import FakeSQS

URL = "http://sqs.local/123456789012/dropq-default"
HEAVY = "http://sqs.local/123456789012/dropq-heavy"


class FakeHub:
    """The worker's event loop as Acks uses it: timers, fired by the test."""

    def __init__(self) -> None:
        self.timers: list[tuple[float, Any]] = []

    def call_later(self, delay: float, callback: Any) -> None:
        self.timers.append((delay, callback))

    def fire(self) -> None:
        timers, self.timers = self.timers, []
        for _, callback in timers:
            callback()


class FakeAsyncConnection:
    """kombu's AsyncSQSConnection as Acks uses it: `make_request` sends, answered later by the test on a FakeSQS.

    `_on_obj_ready` parses the answer as kombu does: it raises what an HTTP or SQS error raises.
    """

    def __init__(self, sqs: FakeSQS) -> None:
        self.sqs = sqs
        self.requests: list[dict[str, Any]] = []
        self.queues: list[str] = []

    def make_request(self, operation: str, params: dict[str, Any], url: str, verb: str, callback: Any, protocol_params: Any) -> None:
        self.requests.append({"operation": operation, "url": url, "verb": verb, "callback": callback, "protocol_params": protocol_params})

    def answer(self, error: Exception | None = None) -> None:
        """Answer the oldest request: the callback gets the response, as kombu's HTTP client hands it."""
        request = self.requests.pop(0)
        entries = request["protocol_params"]["json"]["Entries"]
        request["callback"](error if error is not None else self.sqs.delete_message_batch(QueueUrl=request["url"], Entries=entries))

    def _on_obj_ready(self, parent: Any, operation: str, response: Any) -> dict[str, Any]:
        assert parent is self and operation == "DeleteMessageBatch"
        if isinstance(response, Exception):
            raise response
        return response


def acks_on(sqs: FakeSQS, hub: FakeHub | None, closing: bool = False) -> tuple[Acks, FakeAsyncConnection]:
    connection = FakeAsyncConnection(sqs)

    def connect(queue: str) -> FakeAsyncConnection:
        connection.queues.append(queue)
        return connection

    return Acks(hub=hub, client=lambda: sqs, connection=connect, closing=lambda: closing), connection


def held(sqs: FakeSQS, url: str = URL, queue: str = "default") -> Held:
    return Held(queue, url, sqs.receive(url))


def test_a_tenth_acknowledgement_sends_its_queues_batch_on_the_event_loop_at_once() -> None:
    sqs, hub = FakeSQS(), FakeHub()
    acks, connection = acks_on(sqs, hub)
    for _ in range(10):
        acks.add(held(sqs))

    (request,) = connection.requests
    assert request["operation"] == "DeleteMessageBatch" and request["url"] == URL and request["verb"] == "POST"
    assert [e["Id"] for e in request["protocol_params"]["json"]["Entries"]] == [str(i) for i in range(10)]
    query = request["protocol_params"]["query"]
    assert query["DeleteMessageBatchRequestEntry.10.Id"] == "9" and "DeleteMessageBatchRequestEntry.11.Id" not in query
    assert connection.queues == ["default"] and sqs.calls == [], "not on the blocking client"
    assert acks.in_flight == 1

    connection.answer()
    assert acks.in_flight == 0 and sqs.queues[URL] == {}, "all ten deleted"


def test_fewer_than_ten_wait_at_most_the_ack_delay_and_go_out_one_batch_per_queue() -> None:
    sqs, hub = FakeSQS(), FakeHub()
    acks, connection = acks_on(sqs, hub)
    for item in (held(sqs), held(sqs), held(sqs, HEAVY, "heavy")):
        acks.add(item)

    assert connection.requests == [] and len(hub.timers) == 1, "one timer for all"
    assert hub.timers[0][0] == ACK_DELAY
    hub.fire()
    assert [(r["url"], len(r["protocol_params"]["json"]["Entries"])) for r in connection.requests] == [(URL, 2), (HEAVY, 1)]

    acks.add(held(sqs))
    assert len(hub.timers) == 1, "the next acknowledgement starts the next timer"


def test_a_closing_channel_deletes_at_once_on_the_blocking_client_ten_at_a_time() -> None:
    sqs = FakeSQS()
    acks, connection = acks_on(sqs, FakeHub(), closing=True)
    acks._pending[URL] = [held(sqs) for _ in range(23)]

    acks.flush_all()

    assert [len(p["Entries"]) for p in sqs.params("DeleteMessageBatch")] == [10, 10, 3]
    assert connection.requests == [] and sqs.queues[URL] == {}


def test_without_an_event_loop_acknowledgements_are_deleted_at_once() -> None:
    sqs = FakeSQS()
    acks, connection = acks_on(sqs, None)
    acks._pending[URL] = [held(sqs)]
    acks.flush(URL)
    assert len(sqs.params("DeleteMessageBatch")) == 1 and connection.requests == []


def test_messages_sqs_did_not_delete_are_logged_and_nothing_raises(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dropq.worker")
    sqs = FakeSQS()
    acks, _ = acks_on(sqs, FakeHub(), closing=True)
    acks._pending[URL] = [held(sqs), Held("default", URL, "stale")]
    acks.flush_all()
    assert "a processed message of " + URL + " was not deleted (ReceiptHandleIsInvalid)" in caplog.text

    sqs.failure = EndpointConnectionError(endpoint_url=URL)
    acks._pending[URL] = [held(sqs)]
    acks.flush_all()
    assert "could not delete 1 processed messages of " + URL in caplog.text


def test_a_failed_answer_on_the_event_loop_is_logged_not_raised_and_no_longer_in_flight(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dropq.worker")
    sqs, hub = FakeSQS(), FakeHub()
    acks, connection = acks_on(sqs, hub)
    for _ in range(10):
        acks.add(held(sqs))

    connection.answer(error=RuntimeError("HTTP 503"))

    assert acks.in_flight == 0
    assert "could not delete 10 processed messages of " + URL in caplog.text and "HTTP 503" in caplog.text
    assert len(sqs.queues[URL]) == 10, "they come back and the ledger skips them"

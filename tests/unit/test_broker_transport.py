"""The channel (tasks/broker/transport.py) hands each job kombu calls it for to its collaborator, and closes in order."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from kombu import Connection

from dropq.topology import RECEIVE_VISIBILITY_SECONDS
from tasks.broker.transport import Channel, Transport
from tasks.broker.visibility import Held, held_of
from tests.unit.fake_sqs import FakeSQS, kombu_message

URL = "http://127.0.0.1:9/123456789012/dropq-default"


@pytest.fixture
def channel() -> Iterator[Channel]:
    """A channel on predefined queues (no request at creation) and without an event loop, its SQS replaced by a fake."""
    options = {"region": "us-east-1", "predefined_queues": {"default": {"url": URL}}, "receive_batch": 4, "delay_hop_seconds": 2}
    connection = Connection("sqs://testing:testing@127.0.0.1:9", transport=Transport, transport_options=options)
    made = connection.channel()
    assert isinstance(made, Channel)
    made.visibility._client = made.fake_sqs = FakeSQS()  # type: ignore[attr-defined]
    yield made
    connection.release()


def test_the_transport_options_reach_the_collaborators(channel: Channel) -> None:
    assert channel.receive_batch == 4 and channel.delays.hop_seconds == 2
    assert channel.hub is None and channel.acks.hub is None


def test_a_failed_receive_is_polled_again_later_and_a_message_given_back_is_released(channel: Channel) -> None:
    sqs: FakeSQS = channel.fake_sqs  # type: ignore[attr-defined]
    channel.polls.opened("default", 20)
    assert channel._on_messages_ready(URL, "default", ["an error, as kombu hands it"]) == 0
    assert channel.polls.open == {} and channel.polls.retry_later("default")

    receipt = sqs.receive(URL)
    channel._restore(kombu_message(URL, receipt))
    assert sqs.queues[URL][receipt].visibility_timeout == 0 and sqs.params("SendMessage") == [], "released, not copied"


def test_while_closing_what_a_poll_brings_and_what_is_released_are_visible_at_once(channel: Channel) -> None:
    sqs: FakeSQS = channel.fake_sqs  # type: ignore[attr-defined]
    channel._closing = True
    brought = sqs.receive(URL)
    channel.polls.opened("default", 20)
    assert channel._on_messages_ready(URL, "default", {"Messages": [{"ReceiptHandle": brought, "Body": ""}]}) == 0
    assert sqs.queues[URL][brought].visibility_timeout == 0

    channel.polls.opened("default", 20)
    held = sqs.receive(URL)
    assert channel.release(kombu_message(URL, held))
    assert sqs.queues[URL][held].visibility_timeout == 0, "the open poll is cut, not waited for"


class FakeConnection:
    def __init__(self) -> None:
        self.receives: list[dict[str, Any]] = []

    def receive_message(self, queue: str, queue_url: str, **kwargs: Any) -> None:
        self.receives.append({"queue": queue, "url": queue_url, **kwargs})


def test_a_receive_hides_what_it_brings_for_seconds_and_stamps_when_it_arrived(channel: Channel, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = FakeConnection()
    channel._get_from_sqs("default", URL, connection, count=4)
    (receive,) = connection.receives
    assert receive["visibility_timeout"] == RECEIVE_VISIBILITY_SECONDS and receive["wait_time_seconds"] == channel.wait_time_seconds
    assert receive["number_messages"] == 4 and channel.polls.open.keys() == {"default"}

    delivered: list[Any] = []
    monkeypatch.setattr(channel.connection, "_callbacks", {"default": delivered.append})
    monkeypatch.setattr(time, "monotonic", lambda: 1234.5)
    payload = {"body": "{}", "content-type": "application/json", "content-encoding": "utf-8", "headers": {}, "properties": {}}
    message = {"ReceiptHandle": "r1", "Body": base64.b64encode(json.dumps(payload).encode()).decode(), "MessageId": "m1"}
    assert channel._on_messages_ready(URL, "default", {"Messages": [message]}) == 1
    (payload,) = delivered  # as kombu hands it to the consumer, which makes the message of it
    held = held_of(SimpleNamespace(**payload["properties"]))
    assert held is not None and (held.receipt_handle, held.received) == ("r1", 1234.5)


def test_a_rejected_message_is_released_when_its_queue_has_a_dead_letter_queue(channel: Channel, monkeypatch: pytest.MonkeyPatch) -> None:
    sqs: FakeSQS = channel.fake_sqs  # type: ignore[attr-defined]
    receipt = sqs.receive(URL)
    channel.qos._delivered["tag"] = kombu_message(URL, receipt)
    asked: list[tuple[Any, str]] = []
    monkeypatch.setattr(channel, "_has_redrive_policy", lambda queue, url: asked.append((queue, url)) or True)

    channel._delete_rejected_message("tag")

    assert asked == [("default", URL)]
    assert sqs.queues[URL][receipt].visibility_timeout == 0


class FakeKeeper:
    def __init__(self) -> None:
        self.wakes = 0
        self.stopped = False

    def wake(self) -> None:
        self.wakes += 1

    def stop(self) -> None:
        self.stopped = True


def test_the_keeper_hears_what_the_channel_holds_and_stops_first_at_close(channel: Channel) -> None:
    sqs: FakeSQS = channel.fake_sqs  # type: ignore[attr-defined]
    keeper = channel.visibility.keeper = FakeKeeper()
    receipt = sqs.receive(URL)

    channel.qos.append(kombu_message(URL, receipt), "tag")
    assert keeper.wakes == 1, "turned busy"
    assert channel.held() == [Held("default", URL, receipt)]
    assert channel.change_visibility(channel.held() or [], 120) == 1

    channel.close()  # gives back what it still holds
    assert keeper.stopped and channel.visibility.keeper is None
    assert sqs.queues[URL][receipt].visibility_timeout == 0

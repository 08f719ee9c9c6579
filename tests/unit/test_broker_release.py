"""Giving messages back (tasks/broker/release.py): visible again through a visibility change, never copied."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from botocore.exceptions import EndpointConnectionError

from tasks.broker.release import Release
from tasks.broker.visibility import Held, Visibility
from tests.unit.fake_sqs import FakeSQS, kombu_message

URL = "http://sqs.local/123456789012/dropq-default"


def release_on(sqs: FakeSQS, dlq: bool = True) -> Release:
    return Release(Visibility(lambda: sqs), has_dead_letter_queue=lambda held: dlq)


def test_a_message_given_back_is_made_visible_at_once_and_never_copied() -> None:
    sqs = FakeSQS()
    receipt = sqs.receive(URL)

    assert release_on(sqs).release(kombu_message(URL, receipt))

    assert sqs.queues[URL][receipt].visibility_timeout == 0
    assert [name for name, _ in sqs.calls] == ["ChangeMessageVisibilityBatch"], "no SendMessage: kombu's copy is not made"


def test_a_release_that_fails_says_so_and_leaves_the_message_to_its_visibility_timeout() -> None:
    sqs = FakeSQS()
    assert not release_on(sqs).release(kombu_message(URL, "acknowledged-meanwhile")), "SQS answered Failed"
    assert not release_on(sqs).release(SimpleNamespace(delivery_info={})), "not an SQS message"
    sqs.failure = EndpointConnectionError(endpoint_url=URL)
    assert not release_on(sqs).release(kombu_message(URL, sqs.receive(URL))), "the endpoint is unreachable"


def test_a_rejected_message_is_released_only_when_its_queue_has_a_dead_letter_queue() -> None:
    sqs = FakeSQS()
    receipt = sqs.receive(URL, "not a task")
    asked: list[Held] = []
    without = Release(Visibility(lambda: sqs), has_dead_letter_queue=lambda held: asked.append(held) or False)

    assert not without.release_rejected(kombu_message(URL, receipt)), "left to kombu, which deletes it"
    assert asked == [Held("default", URL, receipt)]
    assert sqs.calls == []

    assert release_on(sqs, dlq=True).release_rejected(kombu_message(URL, receipt))
    assert sqs.queues[URL][receipt].visibility_timeout == 0, "received again at once: SQS counts it towards its redrive"
    assert not release_on(sqs).release_rejected(SimpleNamespace(delivery_info={}))


def test_what_a_poll_brings_while_closing_is_given_back_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dropq.worker")
    sqs = FakeSQS()
    received = [{"ReceiptHandle": sqs.receive(URL), "Body": "b"} for _ in range(3)] + [{"ReceiptHandle": "gone", "Body": "b"}]
    release = release_on(sqs)

    assert release.give_back(URL, "default", received) == 3

    assert all(s.visibility_timeout == 0 for s in sqs.queues[URL].values())
    assert "gave back 3 of 4 messages received from default while stopping" in caplog.text
    assert release.give_back(URL, "default", []) == 0 and len(sqs.calls) == 1, "nothing received: no request"
    sqs.failure = EndpointConnectionError(endpoint_url=URL)
    assert release.give_back(URL, "default", received) == 0

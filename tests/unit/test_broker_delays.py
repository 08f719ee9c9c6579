"""Delays (tasks/broker/delays.py): a countdown becomes an SQS delay, and a message received well before its ETA hops."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from botocore.exceptions import EndpointConnectionError

from tasks.broker.delays import Delays, hop_seconds
from tests.unit.fake_sqs import FakeSQS

URL = "http://sqs.local/123456789012/dropq-default"
NOW = 1_795_334_400.0  # 2026-11-22T08:00:00Z


def eta(seconds: float) -> str:
    return datetime.fromtimestamp(NOW + seconds, tz=UTC).isoformat()


def body(task_id: str, due_in: float | None) -> str:
    headers = {"id": task_id, "eta": None if due_in is None else eta(due_in)}
    return base64.b64encode(json.dumps({"headers": headers, "body": ""}).encode()).decode()


def delays_on(sqs: FakeSQS, hop: int = 900) -> tuple[Delays, list[str]]:
    asked: list[str] = []
    return Delays(hop, sqs=lambda name: asked.append(name) or sqs, clock=lambda: NOW), asked


def test_the_hop_is_the_transport_option_within_sqs_bounds() -> None:
    assert hop_seconds({}) == 900
    assert hop_seconds({"delay_hop_seconds": 2}) == 2
    assert hop_seconds({"delay_hop_seconds": 3600}) == 900
    assert hop_seconds({"delay_hop_seconds": 0}) == 1


def test_a_message_sent_gets_the_delay_its_eta_asks_for_at_most_one_hop() -> None:
    delays, _ = delays_on(FakeSQS(), hop=60)
    soon = {"headers": {"eta": eta(14.7)}}
    later = {"headers": {"eta": eta(3600)}, "properties": {"delay_seconds": 60}}
    delays.set_delay(soon)
    delays.set_delay(later)
    assert soon["properties"] == {"delay_seconds": 14}
    assert later["properties"] == {"delay_seconds": 60}


def test_a_message_sent_again_loses_its_first_delay() -> None:
    delays, _ = delays_on(FakeSQS())
    retried = {"headers": {"eta": None}, "properties": {"delay_seconds": 30, "DelaySeconds": 30, "priority": 0}}
    delays.set_delay(retried)
    assert retried["properties"] == {"priority": 0}
    no_headers: dict[str, object] = {}
    delays.set_delay(no_headers)
    assert no_headers == {"properties": {}}


def test_messages_received_well_before_their_eta_hop_and_the_rest_are_handed_to_celery() -> None:
    sqs = FakeSQS()
    early = {"Body": body("early", 1000), "ReceiptHandle": sqs.receive(URL)}
    almost = {"Body": body("almost", 0.5), "ReceiptHandle": sqs.receive(URL)}
    plain = {"Body": body("plain", None), "ReceiptHandle": sqs.receive(URL)}
    delays, asked = delays_on(sqs, hop=900)

    assert delays.hop_early(URL, "dropq-default", [early, almost, plain]) == [almost, plain]

    (sent,) = sqs.params("SendMessage")
    assert sent == {"QueueUrl": URL, "MessageBody": early["Body"], "DelaySeconds": 900}
    assert sqs.params("DeleteMessage") == [{"QueueUrl": URL, "ReceiptHandle": early["ReceiptHandle"]}], "the copy received is deleted"
    assert asked == ["dropq-default"]


def test_a_hop_that_fails_keeps_the_received_copy_to_try_again() -> None:
    sqs = FakeSQS()
    receipt = sqs.receive(URL)
    sqs.failure = EndpointConnectionError(endpoint_url=URL)
    delays, _ = delays_on(sqs)

    assert delays.hop_early(URL, "dropq-default", [{"Body": body("early", 120), "ReceiptHandle": receipt}]) == []

    assert sqs.params("DeleteMessage") == [] and receipt in sqs.queues[URL], "it comes back after its visibility timeout"

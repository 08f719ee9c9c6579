"""The producer's messages are the ones kombu's SQS transport writes for `apply_async`."""

from __future__ import annotations

import base64
import json
from typing import Any

from celery import Celery

from dropq.protocol import PROCESS_TASK, build_task_message, decode_task_message
from dropq.settings import Settings
from tasks.config import celery_config
from tests.conftest import purge_queues

IDS = {"id", "root_id", "origin", "correlation_id", "reply_to", "delivery_tag"}


def _without_ids(envelope: dict[str, Any]) -> dict[str, Any]:
    def scrub(part: dict[str, Any]) -> dict[str, Any]:
        return {k: ("<id>" if k in IDS else v) for k, v in part.items()}

    return {**envelope, "headers": scrub(envelope["headers"]), "properties": scrub(envelope["properties"])}


def test_producer_message_equals_what_kombu_sends(moto_settings: Settings) -> None:
    # Given a Celery client configured as dropq's workers are, against the same SQS
    purge_queues(moto_settings)
    client = Celery("client")
    client.config_from_object(celery_config(moto_settings))
    kwargs = {"bucket": "dropq-local", "key": "incoming/café menu.csv", "etag": "abc", "size": 10, "version_id": None, "pipeline": "tables"}
    sqs = moto_settings.client("sqs")
    url = moto_settings.queue_url("default")

    # When Celery sends the task and the producer builds the same one
    client.send_task(PROCESS_TASK, kwargs=kwargs, queue="default")
    (celery_message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    _, producer_body = build_task_message(PROCESS_TASK, "default", kwargs)

    # Then the two SQS bodies decode to the same envelope, and the encoded task body is byte-identical
    celery_envelope = json.loads(base64.b64decode(celery_message["Body"]))
    producer_envelope = json.loads(base64.b64decode(producer_body))
    assert producer_envelope["body"] == celery_envelope["body"]
    assert _without_ids(producer_envelope) == _without_ids(celery_envelope)
    assert decode_task_message(producer_body)["body"]["kwargs"] == kwargs
    sqs.delete_message(QueueUrl=url, ReceiptHandle=celery_message["ReceiptHandle"])


def test_task_id_is_used_everywhere_celery_uses_it() -> None:
    task_id, body = build_task_message(PROCESS_TASK, "q", {"a": 1}, task_id="t-1")
    envelope = decode_task_message(body)
    assert task_id == "t-1"
    assert envelope["headers"]["id"] == envelope["headers"]["root_id"] == envelope["properties"]["correlation_id"] == "t-1"
    assert envelope["headers"]["task"] == PROCESS_TASK
    assert envelope["properties"]["delivery_info"] == {"exchange": "", "routing_key": "q"}

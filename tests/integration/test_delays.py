"""A Celery client's countdown becomes SQS's per-message delay: the message is invisible until it is due."""

from __future__ import annotations

import time

from celery import Celery

from dropq.settings import Settings
from tasks.config import celery_config
from tests.conftest import purge_queues, wait_for

COUNTDOWN = 4


def test_a_countdown_is_an_sqs_delay_not_a_message_held_by_a_worker(moto_settings: Settings) -> None:
    purge_queues(moto_settings)
    client = Celery("client")
    client.config_from_object(celery_config(moto_settings))
    sqs, url = moto_settings.client("sqs"), moto_settings.queue_url("default")

    sent = time.monotonic()
    client.send_task("dropq.anything", kwargs={}, queue="default", countdown=COUNTDOWN)
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages") is None, "delayed: not receivable yet"
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"

    (message,) = wait_for(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages"), 15, "the delayed message")
    assert time.monotonic() - sent >= COUNTDOWN - 1, "SQS delays whole seconds, rounded down"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

"""A local Lambda runtime for the producer, keeping Lambda's two contracts with it.

- S3's notifications, as in AWS, go to the inbox events queue, which the producer consumes through an event source
  mapping (`EventSourceMapping`): Lambda receives up to a batch of messages, invokes the function once with them,
  deletes those it handled and leaves the ones its partial batch response names (or all of them, when it fails) to
  come back after the queue's visibility timeout; the queue's redrive policy parks a message received too often.
- A schedule's firing is an asynchronous invocation (`LocalLambda`): delivered at least once, a function error
  retried up to `retries` more times, then sent to the on-failure destination with the error. Locally such
  invocations wait in a queue of their own.

The *same* handler runs, in this process with the Lambda's environment.

Run as `python -m infra.local.lambda_runtime HANDLER INVOCATIONS_URL FAILURE_URL --inbox-url URL`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("dropq.local.lambda")

FUNCTION_NAME = "dropq-producer"
# The producer's timeout (dropq/topology.py: InboxEvents); the handler sees it through get_remaining_time_in_millis.
TIMEOUT_SECONDS = 10
# Seconds before a failed event is tried again (Lambda waits about a minute, then two; shorter locally).
RETRY_DELAYS = (1, 2)
# What one ReceiveMessage brings at most, and waits at most.
SQS_RECEIVE_MAX = 10
SQS_MAX_WAIT = 20


@dataclass
class LambdaContext:
    """The context object Lambda passes to handlers (the fields handlers use)."""

    function_name: str = FUNCTION_NAME
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = f"/aws/lambda/{FUNCTION_NAME}"
    log_stream_name: str = "local"
    deadline: float = field(default_factory=lambda: time.monotonic() + TIMEOUT_SECONDS)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out."""
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def load_handler(path: str) -> Callable[[dict[str, Any], Any], Any]:
    """Import a handler named as Lambda names it: "package.module.function"."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def failure_record(event: dict[str, Any], error: BaseException, attempts: int, context: LambdaContext) -> dict[str, Any]:
    """The record Lambda sends to an on-failure destination when retries are exhausted."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(),
        "requestContext": {
            "requestId": context.aws_request_id,
            "functionArn": context.invoked_function_arn,
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
    }


class LocalLambda:
    """Delivers the events queued by S3 to `handler`, with Lambda's async retries and on-failure destination."""

    def __init__(
        self,
        handler: Callable[[dict[str, Any], Any], Any],
        sqs: Any,
        events_url: str,
        failure_url: str,
        retries: int = 2,
        concurrency: int = 4,
    ) -> None:
        self.handler = handler
        self.sqs = sqs
        self.events_url = events_url
        self.failure_url = failure_url
        self.retries = retries
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="invoke")
        self.stopping = threading.Event()

    def invoke(self, message: dict[str, Any]) -> None:
        """Run the handler on one notification and settle the message: delete, retry later, or dead-letter."""
        event = json.loads(message["Body"])
        attempts = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        context = LambdaContext()
        try:
            self.handler(event, context)
        except Exception as exc:
            if attempts <= self.retries:
                delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
                logger.warning("invocation %s failed (attempt %d), retrying in %ss: %r", context.aws_request_id, attempts, delay, exc)
                self.sqs.change_message_visibility(
                    QueueUrl=self.events_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay
                )
                return
            logger.error("invocation %s failed %d times, sent to the on-failure destination: %r", context.aws_request_id, attempts, exc)
            self.sqs.send_message(QueueUrl=self.failure_url, MessageBody=json.dumps(failure_record(event, exc, attempts, context)))
        self.sqs.delete_message(QueueUrl=self.events_url, ReceiptHandle=message["ReceiptHandle"])

    def run(self) -> None:
        """Receive and invoke until `stop()`."""
        while not self.stopping.is_set():
            try:
                response = self.sqs.receive_message(
                    QueueUrl=self.events_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["ApproximateReceiveCount"]
                )
            except Exception as exc:  # the local cloud may be going away; keep trying until told to stop
                logger.warning("receiving S3 notifications failed: %r", exc)
                self.stopping.wait(1)
                continue
            futures = [self.pool.submit(self.invoke, m) for m in response.get("Messages", [])]
            for future in futures:
                try:
                    future.result()
                except Exception as exc:
                    logger.error("settling a notification failed (it will be delivered again): %r", exc)
        self.pool.shutdown(wait=True)

    def stop(self, *_: Any) -> None:
        """Finish the invocations under way, then return from `run()`."""
        self.stopping.set()


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One received SQS message as Lambda passes it to a function (an event source mapping's record).
    https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#example-standard-queue-message-event"""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": dict(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_items(response: Any, batch: list[dict[str, Any]]) -> set[str] | None:
    """The message ids a partial batch response names, or None when Lambda would take the whole batch as failed.
    https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html#services-sqs-batchfailurereporting"""
    if response is None or response == {}:
        return set()
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids = {m["MessageId"] for m in batch}
    named = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in ids:
            return None
        named.add(identifier)
    return named


class EventSourceMapping:
    """Lambda's SQS event source mapping: batches of a queue's messages to `handler`, with partial batch responses."""

    def __init__(
        self,
        handler: Callable[[dict[str, Any], Any], Any],
        sqs: Any,
        queue_url: str,
        batch_size: int = SQS_RECEIVE_MAX,
        batching_window: float = 0,
        concurrency: int = 4,
        region: str = "us-east-1",
    ) -> None:
        self.handler = handler
        self.sqs = sqs
        self.queue_url = queue_url
        self.batch_size = batch_size
        self.batching_window = batching_window
        self.concurrency = concurrency
        self.region = region
        self.queue_arn = ""
        self.stopping = threading.Event()

    def receive_batch(self) -> list[dict[str, Any]]:
        """Up to `batch_size` messages: what one long poll brings, and, with a batching window, more until the batch is
        full or the window (from the first message) has passed. Empty when a poll brought nothing."""
        batch: list[dict[str, Any]] = []
        deadline = 0.0
        while len(batch) < self.batch_size and not self.stopping.is_set():
            left = deadline - time.monotonic()
            if batch and left <= 0:
                break
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(SQS_RECEIVE_MAX, self.batch_size - len(batch)),
                WaitTimeSeconds=1 if not batch else min(SQS_MAX_WAIT, max(1, int(left))),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if messages and not batch:
                deadline = time.monotonic() + self.batching_window
            batch += messages
            if not batch or self.batching_window <= 0:
                break
        return batch

    def invoke(self, batch: list[dict[str, Any]]) -> None:
        """Invoke the handler with one batch; delete what it handled, leave the rest to come back."""
        context = LambdaContext()
        event = {"Records": [sqs_record(m, self.queue_arn, self.region) for m in batch]}
        try:
            failed = failed_items(self.handler(event, context), batch)
        except Exception as exc:
            logger.warning("invocation %s failed on a batch of %d, all come back: %r", context.aws_request_id, len(batch), exc)
            return
        if failed is None:
            logger.warning("invocation %s returned an invalid partial batch response: the whole batch comes back", context.aws_request_id)
            return
        done = [m for m in batch if m["MessageId"] not in failed]
        for start in range(0, len(done), SQS_RECEIVE_MAX):
            chunk = done[start : start + SQS_RECEIVE_MAX]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            )

    def poll(self) -> None:
        """One poller: receive a batch, invoke, until `stop()`."""
        while not self.stopping.is_set():
            try:
                batch = self.receive_batch()
                if batch:
                    self.invoke(batch)
            except Exception as exc:  # the local cloud may be going away; keep trying until told to stop
                logger.warning("polling %s failed: %r", self.queue_url, exc)
                self.stopping.wait(1)

    def run(self) -> None:
        """Poll with `concurrency` pollers until `stop()`."""
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pollers = [threading.Thread(target=self.poll, name=f"poller-{i}", daemon=True) for i in range(self.concurrency)]
        for poller in pollers:
            poller.start()
        for poller in pollers:
            poller.join()

    def stop(self, *_: Any) -> None:
        self.stopping.set()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the runtime process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("handler")
    parser.add_argument("invocations_url")
    parser.add_argument("failure_url")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--inbox-url", required=True)
    parser.add_argument("--batch-size", type=int, default=SQS_RECEIVE_MAX)
    parser.add_argument("--batching-window", type=float, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from dropq.settings import load_settings
    from dropq.signals import StopRequest

    settings = load_settings()
    handler, sqs = load_handler(args.handler), settings.client("sqs")
    runtime = LocalLambda(handler, sqs, args.invocations_url, args.failure_url, args.retries)
    mapping = EventSourceMapping(handler, sqs, args.inbox_url, args.batch_size, args.batching_window, region=settings.region)

    # The signal handler only sets a flag (dropq/signals.py says why); a thread of its own stops the two loops.
    stop = StopRequest()
    stop.install()

    def stopping() -> None:
        stop.wait()
        mapping.stop()
        runtime.stop()

    threading.Thread(target=stopping, name="stop", daemon=True).start()
    logger.info("local Lambda %s ready: %s and %s -> %s", FUNCTION_NAME, args.inbox_url, args.invocations_url, args.handler)
    polling = threading.Thread(target=mapping.run, name="event-source-mapping", daemon=True)
    polling.start()
    runtime.run()
    polling.join(timeout=TIMEOUT_SECONDS + 5)


if __name__ == "__main__":
    main()

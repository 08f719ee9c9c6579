"""A local Lambda runtime for S3 notifications, keeping the contract of S3's asynchronous invoke.

In AWS, S3 invokes the producer asynchronously: each event is delivered at least once, a
function error is retried up to `retries` more times, and then the event goes to the
on-failure destination with the error. Locally, moto's S3 writes its real notification JSON
to an SQS queue; this runtime receives each one and calls the *same* handler with it, in its
own process with the Lambda's environment, retrying and dead-lettering the same way.

Run as `python -m infra.local.lambda_runtime HANDLER EVENTS_QUEUE_URL FAILURE_QUEUE_URL`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
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
# Lambda's default timeout for the producer; the handler sees it through get_remaining_time_in_millis.
TIMEOUT_SECONDS = 60
# Seconds before a failed event is tried again (Lambda waits about a minute, then two; shorter locally).
RETRY_DELAYS = (1, 2)


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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the runtime process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("handler")
    parser.add_argument("events_url")
    parser.add_argument("failure_url")
    parser.add_argument("--retries", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from dropq.settings import load_settings

    settings = load_settings()
    runtime = LocalLambda(load_handler(args.handler), settings.client("sqs"), args.events_url, args.failure_url, args.retries)
    signal.signal(signal.SIGTERM, runtime.stop)
    signal.signal(signal.SIGINT, runtime.stop)
    logger.info("local Lambda %s ready: %s -> %s", FUNCTION_NAME, args.events_url, args.handler)
    runtime.run()


if __name__ == "__main__":
    main()

"""An in-memory SQS for the broker's unit tests: the calls tasks/broker/ makes, with SQS's answers and its limits.

Each queue holds messages under the receipt handle of their last receive. A batch call answers as SQS does: a
`Successful` entry per accepted Id and a `Failed` entry (ReceiptHandleIsInvalid, SenderFault) per unknown receipt
handle, and it refuses outright more than ten entries or repeated Ids, as SQS does. Every call is recorded.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError

_receipts = itertools.count(1)


@dataclass
class Stored:
    """A message in a fake queue."""

    body: str
    visibility_timeout: int | None = None
    delay_seconds: int = 0


@dataclass
class FakeSQS:
    """The SQS client calls the broker makes, over in-memory queues (queue URL -> receipt handle -> message)."""

    queues: dict[str, dict[str, Stored]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # An exception every call raises (an outage), when set.
    failure: Exception | None = None

    def receive(self, url: str, body: str = "") -> str:
        """Put a message in `url` as if just received; return its receipt handle."""
        receipt = f"receipt-{next(_receipts)}"
        self.queues.setdefault(url, {})[receipt] = Stored(body)
        return receipt

    def params(self, operation: str) -> list[dict[str, Any]]:
        """The parameters of every call of `operation`, in order."""
        return [params for name, params in self.calls if name == operation]

    def _call(self, operation: str, **params: Any) -> None:
        self.calls.append((operation, params))
        if self.failure is not None:
            raise self.failure

    def _batch(self, operation: str, url: str, entries: list[dict[str, Any]], apply: Any) -> dict[str, Any]:
        self._call(operation, QueueUrl=url, Entries=entries)
        if len(entries) > 10:
            raise client_error("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", operation)
        if len({e["Id"] for e in entries}) != len(entries):
            raise client_error("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", operation)
        queue = self.queues.get(url, {})
        successful, failed = [], []
        for entry in entries:
            stored = queue.get(entry["ReceiptHandle"])
            if stored is None:
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": True,
                        "Code": "ReceiptHandleIsInvalid",
                        "Message": "The receipt handle is not valid.",
                    }
                )
                continue
            apply(queue, entry, stored)
            successful.append({"Id": entry["Id"]})
        response: dict[str, Any] = {"Successful": successful, "ResponseMetadata": {"HTTPStatusCode": 200}}
        if failed:
            response["Failed"] = failed
        return response

    def delete_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        return self._batch("DeleteMessageBatch", QueueUrl, Entries, lambda queue, entry, _: queue.pop(entry["ReceiptHandle"]))

    def change_message_visibility_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        def apply(_: Any, entry: dict[str, Any], stored: Stored) -> None:
            stored.visibility_timeout = entry["VisibilityTimeout"]

        return self._batch("ChangeMessageVisibilityBatch", QueueUrl, Entries, apply)

    def send_message(self, *, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0) -> dict[str, Any]:
        self._call("SendMessage", QueueUrl=QueueUrl, MessageBody=MessageBody, DelaySeconds=DelaySeconds)
        if not 0 <= DelaySeconds <= 900:
            raise client_error("InvalidParameterValue", "SendMessage")
        receipt = f"unreceived-{next(_receipts)}"
        self.queues.setdefault(QueueUrl, {})[receipt] = Stored(MessageBody, delay_seconds=DelaySeconds)
        return {"MessageId": receipt}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        self._call("DeleteMessage", QueueUrl=QueueUrl, ReceiptHandle=ReceiptHandle)
        self.queues.get(QueueUrl, {}).pop(ReceiptHandle, None)  # SQS answers alike for a handle already deleted
        return {}


def client_error(code: str, operation: str) -> ClientError:
    """A ClientError as botocore raises it for an SQS error `code`."""
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


def kombu_message(url: str, receipt: str, routing_key: str = "default") -> Any:
    """A kombu message as kombu's SQS channel delivers it: the SQS message and its queue in `delivery_info`."""
    return SimpleNamespace(delivery_info={"sqs_message": {"ReceiptHandle": receipt}, "sqs_queue": url, "routing_key": routing_key})

"""`python -m infra.local.moto_main`: moto's server, with DynamoDB's item writes atomic as in AWS, and SQS
receives that do not slow down with the queue's length.

- moto serves requests on threads and evaluates a ConditionExpression, then applies the update, with
  no lock in between: two workers could both win one conditional write, which DynamoDB never allows
  and which dropq's ledger (claims, leases) relies on. One lock around the item operations restores it.
- moto checks each message it receives against the queue's retention period by computing *all* the
  queue's attributes, approximate counts included, which walks every message in the queue: a receive
  of 10 from a queue of 1,000 took over a second, so every consumer drained a backlog in quadratic time.
  The retention period is read directly instead, and GetQueueAttributes computes the attributes once
  instead of three times per name asked for. Same answers, same behaviour.
- moto's request recorder (which tests count requests with) writes each line in two unlocked writes;
  it takes the same lock, so that lines from two server threads never interleave.
- When DROPQ_DYNAMODB_METER names a file, every DynamoDB request is metered to it (infra/local/meter.py): the table,
  index and partition key it lands on and the units AWS would charge, one JSON line each. The meter reads the item
  before a write under the same lock, so that no other write slips in between.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any

from moto.core.utils import unix_time
from moto.dynamodb.models import DynamoDBBackend
from moto.moto_api._internal.recorder.models import Recorder
from moto.server import main
from moto.sqs.exceptions import InvalidAttributeName
from moto.sqs.models import Message, SQSBackend

from infra.local import meter

ITEM_OPERATIONS = ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items")
_lock = threading.RLock()


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    return locked


def _is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    retention_period = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
    return retention_period + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]


def _get_queue_attributes(self: SQSBackend, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
    queue = self.get_queue(queue_name)
    if not attribute_names:
        return {}
    valid_names = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
    invalid_name = next((name for name in attribute_names if name not in valid_names), None)
    if invalid_name or invalid_name == "":
        raise InvalidAttributeName(invalid_name)
    attributes = queue.attributes
    if "All" in attribute_names:
        return attributes
    return {name: attributes[name] for name in attribute_names if attributes.get(name) is not None}


for _name in ITEM_OPERATIONS:
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))
# moto's recorder appends a request in two writes, unlocked: two server threads would interleave their lines.
Recorder._record_request = _atomic(Recorder._record_request)  # type: ignore[method-assign]
SQSBackend.is_message_valid_based_on_retention_period = _is_message_valid_based_on_retention_period  # type: ignore[method-assign]
SQSBackend.get_queue_attributes = _get_queue_attributes  # type: ignore[method-assign]

if __name__ == "__main__":
    if meter_path := os.environ.get(meter.METER_ENV):
        meter.install(meter_path, lock=_lock)
    main()

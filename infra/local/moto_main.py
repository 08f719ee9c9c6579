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
- moto answers a Query on an index by walking every item of the table: with a few thousand ledger entries, a page of
  `dropq files` (a query per shard, a few rounds) took half a minute. Each table's items are grouped by an index's
  partition key once, until the table's next write, and such a Query walks its group only: the items moto's own walk
  would have kept. Same answers.
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
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from moto.core.utils import unix_time
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.moto_api._internal.recorder.models import Recorder
from moto.server import main
from moto.sqs.exceptions import InvalidAttributeName
from moto.sqs.models import Message, SQSBackend

from infra.local import meter

ITEM_OPERATIONS = ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items")
# The operations that change items: the first argument of each but the last is the table's name.
ITEM_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
_lock = threading.RLock()
# (table name, attribute) -> (the Table object, its items by their value of the attribute); dropped at a write.
_groups: dict[tuple[str, str], tuple[Table, dict[DynamoType, list[Item]]]] = {}


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    return locked


def _dropping_groups(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def writing(self: DynamoDBBackend, first: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, first, *args, **kwargs)
        finally:
            for name, attribute in list(_groups):
                # A transaction names its tables in its items: every group goes.
                if not isinstance(first, str) or name == first:
                    del _groups[(name, attribute)]

    return writing


def _group(table: Table, attribute: str, value: DynamoType) -> list[Item]:
    held = _groups.get((table.name, attribute))
    if held is None or held[0] is not table:
        groups: dict[DynamoType, list[Item]] = defaultdict(list)
        for item in table.all_items():
            if isinstance(item, Item) and (found := item.attrs.get(attribute)) is not None:
                groups[found].append(item)
        held = _groups[(table.name, attribute)] = (table, groups)
    return held[1].get(value, [])


_table_query = Table.query


@functools.wraps(_table_query)  # its signature too, which the meter checks
def _query(self: Table, *args: Any, **kwargs: Any) -> Any:
    """Table.query, over the items of the partition asked for only (called under the backend's lock)."""
    index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
    # By keyword from moto's backend; positionally when the meter (infra/local/meter.py) passes them on.
    conditions = kwargs.get("hash_key_conditions") or (args[10] if len(args) > 10 else None) or []
    if not index_name:
        # The table's own partition: moto keeps its items by their partition key already.
        hash_key = args[0] if args else kwargs.get("hash_key")
        if hash_key is None or not self.range_key_attr:
            return _table_query(self, *args, **kwargs)
        group = list(self.items[hash_key].values()) if hash_key in self.items else []
    elif len(conditions) == 1 and index_name in {i.name for i in self.all_indexes()}:
        ((attribute, value),) = conditions
        group = _group(self, attribute, value)
    else:
        return _table_query(self, *args, **kwargs)
    self.all_items = lambda: list(group)  # type: ignore[method-assign]
    try:
        return _table_query(self, *args, **kwargs)
    finally:
        del self.all_items


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


for _name in ITEM_WRITES:
    setattr(DynamoDBBackend, _name, _dropping_groups(getattr(DynamoDBBackend, _name)))
for _name in ITEM_OPERATIONS:
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))
Table.query = _query  # type: ignore[method-assign]
# moto's recorder appends a request in two writes, unlocked: two server threads would interleave their lines.
Recorder._record_request = _atomic(Recorder._record_request)  # type: ignore[method-assign]
SQSBackend.is_message_valid_based_on_retention_period = _is_message_valid_based_on_retention_period  # type: ignore[method-assign]
SQSBackend.get_queue_attributes = _get_queue_attributes  # type: ignore[method-assign]

if __name__ == "__main__":
    if meter_path := os.environ.get(meter.METER_ENV):
        meter.install(meter_path, lock=_lock)
    main()

"""A DynamoDB meter for the moto server: the table, index and partition key each request lands on, and what it costs there.

DynamoDB throttles one partition at 1,000 WCU/s and 3,000 RCU/s whatever a table's capacity, and a global secondary index
is a table of its own, with partitions of its own: a hot index key throttles writes to the base table. moto neither meters
nor throttles, so `install` makes the server log every DynamoDB request it serves, one JSON line per table-or-index
partition touched, with the read or write units AWS would charge there; a benchmark reads the log back with `read_meter`
and projects, per partition key, the rate at which it would pass those limits, and the price of the requests.

How requests are charged (each rule's page is linked next to its constant below):
- A write costs ceil(max(item size before, after) / 1 KB) units, at least 1; a failed ConditionExpression still costs it
  (sized on the item as it was, or the item a PutItem proposed); a delete is sized on the deleted item.
- Each secondary index compares the item before and after a write: no index key before or after, nothing; a key appears,
  one put on the new key; it disappears, one delete on the old key; it changes (hash or range), a delete on the old
  partition key and a put on the new one; it stays, one write if a projected attribute changed (any for ALL, none for
  KEYS_ONLY, the NonKeyAttributes for INCLUDE). Each is sized on the index entry: the table's and the index's keys and
  the projected attributes. A failed write costs the indexes nothing.
- GetItem, and each item of BatchGetItem, costs ceil(size / 4 KB) units, at least 1, half that unless ConsistentRead.
  Query and Scan add up the size of every item they evaluate (after the key condition and Limit, before the
  FilterExpression; index entries on an index) and round up to 4 KB once per request. A Scan's key is "*".
- TransactGetItems and TransactWriteItems cost twice as much, indexes included; a ConditionCheck is charged as a write of
  the checked item. A cancelled transaction charges each of its items as a failed write of the base table.

Where this departs from AWS: a failed UpdateItem is sized on the item before the update only (moto never computes the item
it would have written); items the legacy QueryFilter or ScanFilter parameters drop go uncounted; an item's size is
DynamoDB's published approximation; local secondary indexes are charged by the same rules as global ones, under their own
name, though AWS draws their units from the base table's partition. PartiQL statements are not metered.

moto's internals this leans on are listed in `_HANDLER_ACTIONS`, `_BACKEND_METHODS` and `_TABLE_METHODS`; `install`
checks they are still there. moto is imported by `install` alone, so that reading a meter does not load moto's DynamoDB.
"""

from __future__ import annotations

import base64
import functools
import inspect
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

# The environment variable that makes infra/local/moto_main.py install the meter, naming the file it appends to.
METER_ENV = "DROPQ_DYNAMODB_METER"

# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html#write-operation-consumption
WRITE_UNIT_BYTES = 1024
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html#read-operation-consumption
READ_UNIT_BYTES = 4096
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html#read-operation-consumption
EVENTUALLY_CONSISTENT_FACTOR = 0.5
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling
TRANSACTION_FACTOR = 2.0
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
LIST_OR_MAP_OVERHEAD_BYTES = 3
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
ELEMENT_OVERHEAD_BYTES = 1
# What one partition serves per second before DynamoDB throttles it, whatever the table's or index's capacity:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html
PARTITION_WRITE_UNITS_PER_SECOND = 1000
PARTITION_READ_UNITS_PER_SECOND = 3000

READ = "read"
WRITE = "write"
SCAN_KEY = "*"

# DynamoDB JSON, as on the wire: {"pk": {"S": "a"}, "n": {"N": "1"}}.
Attributes = dict[str, dict[str, Any]]

# The moto 5.2 internals the meter wraps: DynamoHandler's action methods (they see the request's body)...
_HANDLER_ACTIONS = {
    "put_item": "PutItem",
    "update_item": "UpdateItem",
    "delete_item": "DeleteItem",
    "get_item": "GetItem",
    "query": "Query",
    "scan": "Scan",
    "batch_get_item": "BatchGetItem",
    "batch_write_item": "BatchWriteItem",
    "transact_write_items": "TransactWriteItems",
    "transact_get_items": "TransactGetItems",
}
# ...DynamoDBBackend's item operations (they hold the item before and after), and Table's, whose filter_expression
# argument sees every item a Query or Scan evaluates. Besides these: Table.name/hash_key_attr/range_key_attr/
# global_indexes/indexes, an index's name/schema/projection, Item.attrs, DynamoType.type/value, and the exceptions
# ConditionalCheckFailed and TransactionCanceledException.
_BACKEND_METHODS = ("put_item", "update_item", "delete_item", "get_item", "transact_write_items")
_TABLE_METHODS = ("query", "scan")
_READS = frozenset({"GetItem", "BatchGetItem", "TransactGetItems"})
_TRANSACTIONS = frozenset({"TransactGetItems", "TransactWriteItems"})


@dataclass(frozen=True)
class Access:
    """One table-or-index partition a DynamoDB request touched, and the units it cost there."""

    t: float
    op: str
    table: str
    index: str | None
    key: str
    kind: str
    units: float
    failed: bool = False
    # The application id the client put in its User-Agent (botocore's `Config(user_agent_appid=...)`), if any: how a
    # benchmark tells its own requests (waiting for outcomes, say) from those of the system it measures.
    client: str | None = None


def value_size(value: Mapping[str, Any]) -> int:
    """The bytes DynamoDB counts for one attribute value, by the rules of
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html:
    a string its UTF-8 length; a number 1 byte per 2 significant digits, plus 1; a binary its raw (not base64) length;
    a null or a Boolean 1; a set the sum of its elements; a list or a map 3 bytes, plus 1 byte per element, plus its
    elements (a map's with their names).
    """
    ((kind, v),) = value.items()
    match kind:
        case "S":
            return len(v.encode())
        case "N":
            return (len(Decimal(v).normalize().as_tuple().digits) + 1) // 2 + 1
        case "B":
            return len(v) if isinstance(v, bytes | bytearray) else len(base64.b64decode(v))
        case "BOOL" | "NULL":
            return 1
        case "SS" | "NS" | "BS":
            return sum(value_size({kind[0]: element}) for element in v)
        case "L":
            return LIST_OR_MAP_OVERHEAD_BYTES + sum(ELEMENT_OVERHEAD_BYTES + value_size(element) for element in v)
        case "M":
            elements = (ELEMENT_OVERHEAD_BYTES + len(name.encode()) + value_size(element) for name, element in v.items())
            return LIST_OR_MAP_OVERHEAD_BYTES + sum(elements)
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    """The bytes DynamoDB counts for an item: each attribute's name in UTF-8 plus its `value_size`; 0 for no item."""
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def write_units(size: int) -> float:
    """The write units of writing `size` bytes: whole kilobytes, rounded up, at least 1."""
    return float(max(1, math.ceil(size / WRITE_UNIT_BYTES)))


def read_units(size: int, *, consistent: bool) -> float:
    """The read units of reading `size` bytes: 4 KB blocks, rounded up, at least 1; half that when eventually consistent."""
    blocks = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(blocks) if consistent else blocks * EVENTUALLY_CONSISTENT_FACTOR


def read_meter(path: Path | str) -> list[Access]:
    """The accesses a metered server has appended to `path` so far (none if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    # A server stopped in the middle of a line leaves it unterminated: it is the only line that may be incomplete.
    lines = text.split("\n")[:-1]
    return [Access(**json.loads(line)) for line in lines if line]


# --- Accounting: what a write or a read costs, on which partitions ---------------------------------------------------------


@dataclass(frozen=True)
class _Index:
    """A secondary index as the meter sees it: its keys and which attributes its entries carry."""

    name: str
    hash_keys: tuple[str, ...]
    keys: tuple[str, ...]
    projection: str
    included: frozenset[str]

    def key_of(self, entry: Attributes | None) -> tuple[Any, ...] | None:
        """An entry's index key, comparable across writes (None for no entry)."""
        return None if entry is None else tuple(_canonical(entry[name]) for name in self.keys)

    def entry(self, item: Attributes | None, table_keys: tuple[str, ...]) -> Attributes | None:
        """The item's entry in the index: the table's and the index's keys and the projected attributes; None when the
        item is not in the index (it lacks an index key attribute: the index is sparse)."""
        if item is None or any(name not in item for name in self.keys):
            return None
        if self.projection == "ALL":
            return item
        carried = {*table_keys, *self.keys, *(self.included if self.projection == "INCLUDE" else ())}
        return {name: value for name, value in item.items() if name in carried}


@dataclass(frozen=True)
class _Schema:
    """A table's keys and secondary indexes, read from moto's Table."""

    table: str
    hash_keys: tuple[str, ...]
    keys: tuple[str, ...]
    indexes: tuple[_Index, ...]

    @classmethod
    def of(cls, table: Any) -> _Schema:
        """The schema of a moto Table."""
        keys = tuple(name for name in (table.hash_key_attr, table.range_key_attr) if name)
        indexes = tuple(
            _Index(
                name=index.name,
                hash_keys=tuple(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"),
                keys=tuple(k["AttributeName"] for k in index.schema),
                projection=(index.projection or {}).get("ProjectionType", "ALL"),
                included=frozenset((index.projection or {}).get("NonKeyAttributes", ())),
            )
            for index in [*(table.global_indexes or ()), *(table.indexes or ())]
        )
        return cls(table.name, (table.hash_key_attr,), keys, indexes)


@dataclass
class _Request:
    """The DynamoDB request a server thread is serving, and the accesses it has been charged so far."""

    op: str
    body: Mapping[str, Any]
    accesses: list[Access] = field(default_factory=list)
    client: str | None = None

    @property
    def factor(self) -> float:
        return TRANSACTION_FACTOR if self.op in _TRANSACTIONS else 1.0

    def charge(self, schema: _Schema, index: str | None, key: str, kind: str, units: float, failed: bool = False) -> None:
        access = Access(time.time(), self.op, schema.table, index, key, kind, units * self.factor, failed, self.client)
        self.accesses.append(access)

    def charge_write(self, schema: _Schema, key: Attributes, before: Attributes | None, after: Attributes | None, failed: bool) -> None:
        """Charge one item's write: the base table, then (unless it failed) each index the change reaches."""
        size = max(item_size(before), item_size(after))
        self.charge(schema, None, _partition(key, schema.hash_keys), WRITE, write_units(size), failed)
        if failed:
            return
        for index in schema.indexes:
            old, new = index.entry(before, schema.keys), index.entry(after, schema.keys)
            if old is None and new is None:
                continue
            if index.key_of(old) != index.key_of(new):
                # The entry moves (or appears, or goes): a delete under the old key, a put under the new one.
                for entry in (e for e in (old, new) if e is not None):
                    self.charge(schema, index.name, _partition(entry, index.hash_keys), WRITE, write_units(item_size(entry)))
            elif old is not None and new is not None and _canonical_item(old) != _canonical_item(new):
                # Same key, changed projection: the entry is rewritten in place, sized like an UpdateItem (the larger).
                units = write_units(max(item_size(old), item_size(new)))
                self.charge(schema, index.name, _partition(new, index.hash_keys), WRITE, units)

    def charge_read(self, schema: _Schema, index: str | None, key: str, size: int, consistent: bool) -> None:
        self.charge(schema, index, key, READ, read_units(size, consistent=consistent))


def _partition(item: Mapping[str, Mapping[str, Any]], hash_keys: Iterable[str]) -> str:
    """An item's partition key value as a string (several hash attributes, as a multi-attribute index has, joined by '#')."""
    return "#".join(_key_string(item[name]) for name in hash_keys)


def _key_string(value: Mapping[str, Any]) -> str:
    ((_, v),) = value.items()
    return base64.b64encode(v).decode() if isinstance(v, bytes | bytearray) else str(v)


def _canonical(value: Mapping[str, Any]) -> Any:
    """A value that compares equal exactly when DynamoDB would call two attribute values equal (1 and 1.0, sets in any order)."""
    ((kind, v),) = value.items()
    match kind:
        case "N":
            return kind, Decimal(v)
        case "NS":
            return kind, frozenset(Decimal(element) for element in v)
        case "SS" | "BS":
            return kind, frozenset(v)
        case "L":
            return kind, tuple(_canonical(element) for element in v)
        case "M":
            return kind, frozenset((name, _canonical(element)) for name, element in v.items())
    return kind, v


def _canonical_item(item: Attributes) -> frozenset[tuple[str, Any]]:
    return frozenset((name, _canonical(value)) for name, value in item.items())


# --- moto: reading its items, and the patches ------------------------------------------------------------------------------


def _wire(value: Any) -> dict[str, Any]:
    """A moto DynamoType as DynamoDB JSON, copied, so that moto updating the item in place later does not change it."""
    if isinstance(value, dict):
        return value
    if value.type == "L":
        return {"L": [_wire(element) for element in value.value]}
    if value.type == "M":
        return {"M": {name: _wire(element) for name, element in value.value.items()}}
    if value.type in ("SS", "NS", "BS"):
        return {value.type: list(value.value)}
    return {value.type: value.value}


def _attributes(item: Any) -> Attributes | None:
    """A moto Item as DynamoDB JSON (None for no item)."""
    return None if item is None else {name: _wire(value) for name, value in item.attrs.items()}


class _Evaluated:
    """Stands in for a Query's or Scan's filter, which moto applies to every item the key condition and Limit let through:
    it adds up their sizes, then answers as the real filter would (or lets every item through when there is none)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.size = 0

    def expr(self, item: Any) -> bool:
        self.size += item_size(_attributes(item))
        return True if self.inner is None else bool(self.inner.expr(item))


class _Sink:
    """The meter's file: whole lines, one writer at a time (the server serves requests on threads), flushed each."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, accesses: Iterable[Access]) -> None:
        with self._lock:
            for access in accesses:
                self._file.write(json.dumps(asdict(access)) + "\n")
                self._file.flush()


_local = threading.local()
_sink: _Sink | None = None
_patched = False


def _current() -> _Request | None:
    return getattr(_local, "request", None)


def install(path: Path | str, *, lock: AbstractContextManager[Any] | None = None) -> None:
    """Meter every DynamoDB request this process's moto serves from now on to `path` (appended to, one JSON line an access).

    `lock` is the reentrant lock moto's item operations already run under (infra/local/moto_main.py's), so that the item
    the meter reads before a write and the write itself are one step; by default the meter takes a lock of its own.
    """
    global _sink, _patched
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    missing = [
        f"{cls.__name__}.{name}"
        for cls, names in ((DynamoHandler, _HANDLER_ACTIONS), (DynamoDBBackend, _BACKEND_METHODS), (Table, _TABLE_METHODS))
        for name in names
        if not callable(getattr(cls, name, None))
    ]
    missing += [f"Table.{name}(filter_expression=)" for name in _TABLE_METHODS if "filter_expression" not in _parameters(Table, name)]
    if missing:
        raise RuntimeError(f"moto has changed: the DynamoDB meter needs {', '.join(missing)}")
    _sink = _Sink(Path(path))
    if _patched:  # a second install only points the meter at another file
        return
    _patched = True
    guard = lock if lock is not None else threading.RLock()
    for name, op in _HANDLER_ACTIONS.items():
        setattr(DynamoHandler, name, _serving(op, getattr(DynamoHandler, name)))
    read_item = DynamoDBBackend.get_item
    DynamoDBBackend.put_item = _metered_write(DynamoDBBackend.put_item, read_item, guard, puts=True)  # type: ignore[method-assign]
    DynamoDBBackend.update_item = _metered_write(DynamoDBBackend.update_item, read_item, guard)  # type: ignore[method-assign]
    DynamoDBBackend.delete_item = _metered_write(DynamoDBBackend.delete_item, read_item, guard, deletes=True)  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = _metered_transaction(DynamoDBBackend.transact_write_items, read_item, guard)  # type: ignore[method-assign]
    DynamoDBBackend.get_item = _metered_get(read_item, guard)  # type: ignore[method-assign]
    Table.query = _metered_read(Table.query, scan=False)  # type: ignore[method-assign]
    Table.scan = _metered_read(Table.scan, scan=True)  # type: ignore[method-assign]


def _parameters(cls: type, name: str) -> Mapping[str, inspect.Parameter]:
    method = getattr(cls, name, None)
    return inspect.signature(method).parameters if callable(method) else {}


def _serving(op: str, action: Callable[..., Any]) -> Callable[..., Any]:
    """A DynamoHandler action that records which request the thread serves, and appends what it cost once it is served."""

    @functools.wraps(action)
    def serve(handler: Any) -> Any:
        request = _Request(op, getattr(handler, "body", None) or {}, client=_client(getattr(handler, "headers", None) or {}))
        _local.request = request
        try:
            return action(handler)
        finally:
            _local.request = None
            if request.accesses and _sink is not None:
                _sink.write(request.accesses)

    return serve


# botocore writes `Config(user_agent_appid=...)` into the User-Agent as "app/<id>".
_APP_ID = re.compile(r"(?:^|\s)app/([^\s]+)")


def _client(headers: Mapping[str, Any]) -> str | None:
    """The application id of the client that sent a request, from its User-Agent."""
    agent = next((str(v) for k, v in headers.items() if k.lower() == "user-agent"), "")
    found = _APP_ID.search(agent)
    return found.group(1) if found else None


def _before(
    read_item: Callable[..., Any], backend: Any, table_name: str, key: Mapping[str, Any]
) -> tuple[_Schema, Attributes, Attributes | None]:
    """The table's schema, the item's primary key and the whole item as it is now (None when there is none)."""
    table = backend.get_table(table_name)
    schema = _Schema.of(table)
    item_key = {name: key[name] for name in schema.keys}
    return schema, item_key, _attributes(read_item(backend, table_name, item_key))


def _metered_write(
    method: Callable[..., Any],
    read_item: Callable[..., Any],
    guard: AbstractContextManager[Any],
    *,
    puts: bool = False,
    deletes: bool = False,
) -> Callable[..., Any]:
    """DynamoDBBackend.put_item, update_item or delete_item (their second argument is the item or its key), charging the
    write by the item before and after, all under `guard`, so that no other write comes in between."""
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    @functools.wraps(method)
    def write(backend: Any, table_name: str, key: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        request = _current()
        if request is None:
            return method(backend, table_name, key, *args, **kwargs)
        with guard:
            try:
                schema, item_key, old = _before(read_item, backend, table_name, key)
            except Exception:  # an unknown table or a malformed key: moto rejects the request, and AWS charges nothing
                return method(backend, table_name, key, *args, **kwargs)
            try:
                result = method(backend, table_name, key, *args, **kwargs)
            except ConditionalCheckFailed:
                request.charge_write(schema, item_key, old, dict(key) if puts else None, failed=True)
                raise
            request.charge_write(schema, item_key, old, None if deletes else _attributes(result), failed=False)
            return result

    return write


def _metered_get(read_item: Callable[..., Any], guard: AbstractContextManager[Any]) -> Callable[..., Any]:
    """DynamoDBBackend.get_item, charging GetItem, BatchGetItem and TransactGetItems by the whole item's size."""

    @functools.wraps(read_item)
    def get_item(backend: Any, table_name: str, keys: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        request = _current()
        # Handlers also read items for their own ends (UpdateItem's old values, a transaction's conditions): not charged.
        if request is None or request.op not in _READS:
            return read_item(backend, table_name, keys, *args, **kwargs)
        with guard:
            result = read_item(backend, table_name, keys, *args, **kwargs)
            # The whole item, not `result`: a ProjectionExpression does not cut what a read costs.
            schema, item_key, item = _before(read_item, backend, table_name, keys)
        if request.op == "BatchGetItem":
            consistent = bool(request.body.get("RequestItems", {}).get(table_name, {}).get("ConsistentRead"))
        else:
            consistent = request.op == "TransactGetItems" or bool(request.body.get("ConsistentRead"))
        request.charge_read(schema, None, _partition(item_key, schema.hash_keys), item_size(item), consistent)
        return result

    return get_item


def _metered_transaction(
    method: Callable[..., Any], read_item: Callable[..., Any], guard: AbstractContextManager[Any]
) -> Callable[..., Any]:
    """DynamoDBBackend.transact_write_items. Its Puts, Updates and Deletes call the (metered) item operations; this adds
    its ConditionChecks, and when moto cancels the transaction, swaps what they charged for one failed write per item."""
    from moto.dynamodb.exceptions import TransactionCanceledException

    @functools.wraps(method)
    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        request = _current()
        if request is None:
            return method(backend, transact_items, *args, **kwargs)
        with guard:
            try:
                plan = [_planned(read_item, backend, transact_item) for transact_item in transact_items]
            except Exception:  # a malformed transaction: moto rejects it, and AWS charges nothing
                plan = []
            mark = len(request.accesses)
            try:
                result = method(backend, transact_items, *args, **kwargs)
            except Exception as exc:
                del request.accesses[mark:]  # moto rolled the tables back: none of those writes happened
                if isinstance(exc, TransactionCanceledException):
                    for _, schema, key, old, proposed in plan:
                        request.charge_write(schema, key, old, proposed, failed=True)
                raise
            for op_type, schema, key, old, _ in plan:
                if op_type == "ConditionCheck":
                    request.charge_write(schema, key, old, old, failed=False)
            return result

    return transact_write_items


def _planned(read_item: Callable[..., Any], backend: Any, transact_item: Mapping[str, Any]) -> tuple[str, _Schema, Attributes, Any, Any]:
    """One item of a TransactWriteItems: its action, its table, its key, the item as it is, and the item a Put proposes."""
    ((action, op),) = transact_item.items()
    proposed = op["Item"] if action == "Put" else None
    return action, *_before(read_item, backend, op["TableName"], proposed or op["Key"]), proposed


def _metered_read(method: Callable[..., Any], *, scan: bool) -> Callable[..., Any]:
    """Table.query or Table.scan, charging the items it evaluates to the queried partition (or "*") of the table or index."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def read(table: Any, *args: Any, **kwargs: Any) -> Any:
        request = _current()
        if request is None:
            return method(table, *args, **kwargs)
        bound = signature.bind(table, *args, **kwargs)
        evaluated = _Evaluated(bound.arguments.get("filter_expression"))
        bound.arguments["filter_expression"] = evaluated
        result = method(*bound.args, **bound.kwargs)
        if scan:
            key = SCAN_KEY
        else:
            conditions = bound.arguments.get("hash_key_conditions") or [(None, bound.arguments.get("hash_key"))]
            key = "#".join(_key_string(_wire(value)) for _, value in conditions if value is not None)
        consistent = bool(bound.arguments.get("consistent_read"))
        request.charge_read(_Schema.of(table), bound.arguments.get("index_name"), key, evaluated.size, consistent)
        return result

    return read

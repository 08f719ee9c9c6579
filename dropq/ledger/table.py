"""The ledger's table and the one way its file entries are written: an UpdateItem that sets, keeps, appends, adds and
removes in one conditional request."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from dropq.ledger import codec
from dropq.ledger.codec import decode_item, encode, file_pk, iso
from dropq.ledger.states import CONDITION_NAMES, FAILED, FAILED_INDEX, HISTORY, RECENT
from dropq.objects import ObjectRef
from dropq.shards import sharded
from dropq.topology import TableSpec


class LedgerTable:
    """The ledger's table: its spec, name, client and TTL, its index keys, its conditional writes and its paged reads."""

    def __init__(
        self,
        table: TableSpec,
        table_name: str,
        client: Any,
        ttl_seconds: int,
        default_queue: str = "default",
        failed_ttl_seconds: int | None = None,
        output_prefix: str = "processed/",
    ) -> None:
        self.table = table
        self.table_name = table_name
        self.client = client
        # How long an entry is kept after the write that gave it its state: a failed one `failed_ttl_seconds`, any
        # other `ttl_seconds` (dropq/topology.py says why). The longer is as far back as anything is found.
        self.ttl_seconds = ttl_seconds
        self.failed_ttl_seconds = max(ttl_seconds, failed_ttl_seconds or ttl_seconds)
        self.default_queue = default_queue
        # Where outputs go (the topology's): an entry stores its outputs' names below its own folder there.
        self.output_prefix = output_prefix

    def _decode(self, item: dict[str, Any]) -> dict[str, Any]:
        """An item as `decode_item` reads it, its outputs as whole keys."""
        return decode_item(item, self.output_prefix)

    def _expires(self, state: str | None, now: datetime) -> int:
        """When an entry left in `state` by a write at `now` expires."""
        return int(now.timestamp()) + (self.failed_ttl_seconds if state == FAILED else self.ttl_seconds)

    # Index keys: the attributes that place an entry in each index (dropq/topology.py names them).

    def _index_keys(self, index: str, value: str, ref: ObjectRef, at: datetime) -> dict[str, Any]:
        spec = self.table.index(index)
        return {spec.partition_key: sharded(value, file_pk(ref.bucket, ref.key), self.table.shards), spec.sort_key: iso(at)}

    def _index_names(self, index: str) -> tuple[str, str]:
        spec = self.table.index(index)
        return spec.partition_key, spec.sort_key

    def _recent(self, ref: ObjectRef, at: datetime) -> dict[str, Any]:
        return self._index_keys(RECENT, codec.day(at), ref, at)

    def _failed(self, ref: ObjectRef, at: datetime) -> dict[str, Any]:
        return self._index_keys(FAILED_INDEX, codec.day(at), ref, at)

    def _update(
        self,
        ref: ObjectRef,
        values: dict[str, Any],
        condition: str | None = None,
        extra: dict[str, Any] | None = None,
        add: dict[str, int] | None = None,
        keep: dict[str, Any] | None = None,
        remove: Iterable[str] = (),
        append: Sequence[dict[str, Any]] = (),
        returns: str = "UPDATED_NEW",
    ) -> dict[str, Any] | None:
        """Set attributes (removing those set to None), set others only where they are missing (`keep`), add records to
        its `history` (`append`), ADD to counters and REMOVE attributes on an object's entry; return the updated
        attributes' new values (or, with `returns="ALL_OLD"`, the entry as it was), or None when `condition` does not
        hold (and nothing was written)."""
        now = codec.now()
        # An attribute set to None is removed: nothing is stored (and paid for, for as long as the entry is kept) for it.
        remove = [*remove, *(name for name, value in values.items() if value is None)]
        values = {name: value for name, value in values.items() if value is not None}
        expires = {self.table.ttl_attribute: self._expires(values.get("state"), now)}
        if "state" not in values:
            # A write that leaves the state as it is (a split) leaves its expiry too: a failed entry keeps its longer one.
            keep = {**expires, **(keep or {})}
            expires = {}
        # The bucket and key are the partition key's (codec.decode_item reads them from it).
        values = {**values, "size": ref.size, "updated_at": iso(now), **expires}
        names = {f"#a{i}": name for i, name in enumerate(values)}
        placeholders = {f":v{i}": encode(value) for i, value in enumerate(values.values())}
        sets = [f"#a{i} = :v{i}" for i in range(len(values))]
        for i, (name, value) in enumerate((keep or {}).items()):
            # Written once: an index key that stays the same costs its index no write.
            names[f"#k{i}"], placeholders[f":k{i}"] = name, encode(value)
            sets.append(f"#k{i} = if_not_exists(#k{i}, :k{i})")
        if append:
            names["#h"], placeholders[":h0"], placeholders[":h1"] = HISTORY, {"L": []}, encode(list(append))
            sets.append("#h = list_append(if_not_exists(#h, :h0), :h1)")
        expression = "SET " + ", ".join(sets)
        if add:
            names.update({f"#n{i}": name for i, name in enumerate(add)})
            placeholders.update({f":n{i}": encode(amount) for i, amount in enumerate(add.values())})
            expression += " ADD " + ", ".join(f"#n{i} :n{i}" for i in range(len(add)))
        removed = list(remove)
        if removed:
            names.update({f"#r{i}": name for i, name in enumerate(removed)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": file_pk(ref.bucket, ref.key)}, "sk": {"S": ref.etag}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {**placeholders, **{k: encode(v) for k, v in (extra or {}).items()}},
            "ReturnValues": returns,
        }
        if condition:
            request["ConditionExpression"] = condition
            named = {f"#{name}": name for name in CONDITION_NAMES if re.search(f"#{name}\\b", condition)}
            request["ExpressionAttributeNames"].update(named)
        try:
            response = self.client.update_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return self._decode(response.get("Attributes", {}))

    def _write(
        self,
        ref: ObjectRef,
        values: dict[str, Any],
        condition: str,
        extra: dict[str, Any],
        add: dict[str, int] | None = None,
        keep: dict[str, Any] | None = None,
        remove: Iterable[str] = (),
        append: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """A conditional `_update`: whether it was written."""
        return self._update(ref, values, condition=condition, extra=extra, add=add, keep=keep, remove=remove, append=append) is not None

    def get(self, bucket: str, key: str, etag: str | None = None) -> dict[str, Any] | None:
        """The newest entry for a key (or the entry for one ETag), or None."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": file_pk(bucket, key)}},
            "ConsistentRead": True,
        }
        if etag is not None:
            request["KeyConditionExpression"] += " AND sk = :sk"
            request["ExpressionAttributeValues"][":sk"] = {"S": etag}
        items = [self._decode(i) for i in self.client.query(**request).get("Items", [])]
        return max(items, key=lambda i: i.get("updated_at", ""), default=None)

    def _pages(self, **request: Any) -> Iterator[list[dict[str, Any]]]:
        while True:
            response = self.client.query(**request)
            yield response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

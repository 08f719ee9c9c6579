"""The ledger: what happened to each dropped file, in DynamoDB.

One item per object version (bucket, key, ETag): pk = "file#s3://bucket/key", sk = ETag, with its
state (queued -> running -> succeeded | failed), timestamps, pipeline, outputs and, on failure,
a reason a person understands. A sparse index ("recent": day, updated_at) lists recent files.
Worker heartbeats live in the same table under pk = "worker".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from dropq.objects import ObjectRef
from infra.topology import TableSpec

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
WORKER_PK = "worker"
# A worker whose heartbeat is older than this is not listed as alive.
WORKER_STALE_SECONDS = 90
# DynamoDB's item size limit is 400 KB; a reason longer than this is cut, never the write refused.
MAX_REASON_CHARS = 2000


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (list, tuple)):
        return {"L": [_encode(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: _encode(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__} in the ledger")


def _decode(attr: dict[str, Any]) -> Any:
    ((kind, value),) = attr.items()
    if kind == "S" or kind == "BOOL":
        return value
    if kind == "N":
        return float(value) if any(c in value for c in ".eE") else int(value)
    if kind == "NULL":
        return None
    if kind == "L":
        return [_decode(v) for v in value]
    if kind == "M":
        return {k: _decode(v) for k, v in value.items()}
    raise TypeError(f"unexpected DynamoDB type {kind}")


def decode_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python values."""
    return {name: _decode(attr) for name, attr in item.items()}


def file_pk(bucket: str, key: str) -> str:
    """The partition key of an object's ledger entries."""
    return f"file#s3://{bucket}/{key}"


class Ledger:
    """Reads and writes file states; every transition is one conditional DynamoDB write."""

    def __init__(self, table: TableSpec, table_name: str, client: Any, ttl_seconds: int) -> None:
        self.table = table
        self.table_name = table_name
        self.client = client
        self.ttl_seconds = ttl_seconds

    def _update(self, ref: ObjectRef, values: dict[str, Any], condition: str | None = None, extra: dict[str, Any] | None = None) -> bool:
        """Set attributes on an object's entry; False when `condition` does not hold."""
        now = _now()
        values = {
            **values,
            "bucket": ref.bucket,
            "key": ref.key,
            "size": ref.size,
            "updated_at": _iso(now),
            "day": now.strftime("%Y-%m-%d"),
            self.table.ttl_attribute: int(now.timestamp()) + self.ttl_seconds,
        }
        names = {f"#a{i}": name for i, name in enumerate(values)}
        placeholders = {f":v{i}": _encode(value) for i, value in enumerate(values.values())}
        sets = ", ".join(f"#a{i} = :v{i}" for i in range(len(values)))
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": file_pk(ref.bucket, ref.key)}, "sk": {"S": ref.etag}},
            "UpdateExpression": f"SET {sets}",
            "ExpressionAttributeNames": {**names, "#state": "state"},
            "ExpressionAttributeValues": {**placeholders, **{k: _encode(v) for k, v in (extra or {}).items()}},
        }
        if condition:
            request["ConditionExpression"] = condition
        else:
            del request["ExpressionAttributeNames"]["#state"]
        try:
            self.client.update_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def mark_queued(self, ref: ObjectRef, pipeline: str, queue: str, task_id: str) -> bool:
        """Record that a file was enqueued; False (and nothing written) if it is already running or done."""
        return self._update(
            ref,
            {"state": QUEUED, "pipeline": pipeline, "queue": queue, "task_id": task_id, "queued_at": _iso(_now())},
            condition="attribute_not_exists(#state) OR #state = :queued",
            extra={":queued": QUEUED},
        )

    def mark_running(self, ref: ObjectRef, pipeline: str, task_id: str, attempt: int, worker: str | None = None) -> bool:
        """Record that a worker started on a file; False if it already succeeded (a duplicate delivery)."""
        started = {"started_at": _iso(_now()), "attempt": attempt, "worker": worker, "reason": None}
        return self._update(
            ref,
            {"state": RUNNING, "pipeline": pipeline, "task_id": task_id, **started},
            condition="attribute_not_exists(#state) OR #state <> :succeeded",
            extra={":succeeded": SUCCEEDED},
        )

    def mark_succeeded(self, ref: ObjectRef, outputs: Iterable[str], duration_ms: int, sha256: str) -> None:
        """Record a file's outputs."""
        self._update(
            ref,
            {
                "state": SUCCEEDED,
                "outputs": list(outputs),
                "finished_at": _iso(_now()),
                "duration_ms": duration_ms,
                "sha256": sha256,
                "reason": None,
            },
        )

    def mark_failed(self, ref: ObjectRef, reason: str, pipeline: str | None = None) -> None:
        """Record why a file could not be processed; never overwrites a success."""
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        values: dict[str, Any] = {"state": FAILED, "reason": reason, "finished_at": _iso(_now())}
        if pipeline:
            values["pipeline"] = pipeline
        self._update(ref, values, condition="attribute_not_exists(#state) OR #state <> :succeeded", extra={":succeeded": SUCCEEDED})

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
        items = [decode_item(i) for i in self.client.query(**request).get("Items", [])]
        return max(items, key=lambda i: i.get("updated_at", ""), default=None)

    def recent(self, limit: int = 20, days: int = 2) -> list[dict[str, Any]]:
        """The most recently updated files, newest first, from the last `days` days."""
        index, hash_key, range_key = self.table.indexes[0]
        found: list[dict[str, Any]] = []
        today = _now().date()
        for offset in range(days):
            day = (today - timedelta(days=offset)).isoformat()
            for page in self._pages(
                TableName=self.table_name,
                IndexName=index,
                KeyConditionExpression="#h = :day",
                ExpressionAttributeNames={"#h": hash_key},
                ExpressionAttributeValues={":day": {"S": day}},
                ScanIndexForward=False,
            ):
                found.extend(decode_item(i) for i in page)
                if len(found) >= limit:
                    return sorted(found, key=lambda i: i[range_key], reverse=True)[:limit]
        return sorted(found, key=lambda i: i[range_key], reverse=True)[:limit]

    def _pages(self, **request: Any) -> Iterator[list[dict[str, Any]]]:
        while True:
            response = self.client.query(**request)
            yield response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def heartbeat(self, hostname: str, info: dict[str, Any]) -> None:
        """Record that a worker is alive (its entry expires by itself)."""
        now = int(time.time())
        item = {"pk": WORKER_PK, "sk": hostname, "last_seen": now, self.table.ttl_attribute: now + WORKER_STALE_SECONDS * 10, **info}
        self.client.put_item(TableName=self.table_name, Item={k: _encode(v) for k, v in item.items()})

    def forget_worker(self, hostname: str) -> None:
        """Remove a worker that shut down cleanly."""
        self.client.delete_item(TableName=self.table_name, Key={"pk": {"S": WORKER_PK}, "sk": {"S": hostname}})

    def workers(self) -> list[dict[str, Any]]:
        """Workers whose heartbeat is recent."""
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": WORKER_PK}},
            ConsistentRead=True,
        )
        horizon = time.time() - WORKER_STALE_SECONDS
        return [w for w in (decode_item(i) for i in response.get("Items", [])) if w["last_seen"] >= horizon]


def ledger_for(settings: Any, client: Any = None) -> Ledger:
    """The ledger of a deployment described by `settings` (a `dropq.settings.Settings`)."""
    topology = settings.topology
    table_name = settings.physical_name(topology.ledger_table.name)
    return Ledger(topology.ledger_table, table_name, client or settings.client("dynamodb"), topology.ledger_ttl_seconds)

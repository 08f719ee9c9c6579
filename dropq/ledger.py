"""The ledger: what happened to each dropped file, in DynamoDB.

One item per object version (bucket, key, ETag): pk = "file#s3://bucket/key", sk = ETag, with its
state (queued -> running -> succeeded | failed), timestamps, pipeline, outputs and, on failure,
a reason a person understands. A sparse index ("recent": day, updated_at) lists recent files.
Worker heartbeats live in the same table under pk = "worker".

Exactly-once in effect: a worker `claim`s a file with a lease it renews while it works (`hold`); a
second delivery of the file finds it succeeded (and is skipped) or leased (and waits), so one
attempt at a time runs it and one success is recorded (`completions` counts them).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dropq.objects import ObjectRef
from infra.topology import TableSpec

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
WORKER_PK = "worker"
# A periodic task's runs: pk = "schedule#<name>", sk = the scheduled time of the period.
SCHEDULE_PK = "schedule#"
# A worker whose heartbeat is older than this is not listed as alive.
WORKER_STALE_SECONDS = 90
# DynamoDB's item size limit is 400 KB; a reason longer than this is cut, never the write refused.
MAX_REASON_CHARS = 2000
# Attributes conditions name as `#name` (`state` is a DynamoDB reserved word).
CONDITION_ATTRIBUTES = ("state", "lease_owner", "lease_until")


@dataclass(frozen=True)
class Claim:
    """What `Ledger.claim` found: the file is ours (`owner` is our lease), or why not."""

    acquired: bool
    owner: str | None
    state: str
    lease_remaining: float
    attempts: int
    # The file runs as parts (a chord) that finish it: another delivery has nothing to do.
    split: bool = False


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


def entry_ref(entry: dict[str, Any]) -> ObjectRef:
    """The object version a file entry is about."""
    return ObjectRef(bucket=entry["bucket"], key=entry["key"], etag=entry["sk"], size=int(entry.get("size") or 0))


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

    def _update(
        self,
        ref: ObjectRef,
        values: dict[str, Any],
        condition: str | None = None,
        extra: dict[str, Any] | None = None,
        add: dict[str, int] | None = None,
    ) -> dict[str, Any] | None:
        """Set attributes (and ADD to counters) on an object's entry; return the updated attributes' new
        values, or None when `condition` does not hold (and nothing was written)."""
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
        expression = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values)))
        if add:
            names.update({f"#n{i}": name for i, name in enumerate(add)})
            placeholders.update({f":n{i}": _encode(amount) for i, amount in enumerate(add.values())})
            expression += " ADD " + ", ".join(f"#n{i} :n{i}" for i in range(len(add)))
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": file_pk(ref.bucket, ref.key)}, "sk": {"S": ref.etag}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {**placeholders, **{k: _encode(v) for k, v in (extra or {}).items()}},
            "ReturnValues": "UPDATED_NEW",
        }
        if condition:
            request["ConditionExpression"] = condition
            request["ExpressionAttributeNames"].update({f"#{name}": name for name in CONDITION_ATTRIBUTES if f"#{name}" in condition})
        try:
            response = self.client.update_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return decode_item(response.get("Attributes", {}))

    def _write(
        self, ref: ObjectRef, values: dict[str, Any], condition: str, extra: dict[str, Any], add: dict[str, int] | None = None
    ) -> bool:
        """A conditional `_update`: whether it was written."""
        return self._update(ref, values, condition=condition, extra=extra, add=add) is not None

    def mark_queued(self, ref: ObjectRef, pipeline: str, queue: str, task_id: str) -> bool:
        """Record that a file was enqueued; False (and nothing written) if it is already running or done."""
        return self._write(
            ref,
            {"state": QUEUED, "pipeline": pipeline, "queue": queue, "task_id": task_id, "queued_at": _iso(_now())},
            condition="attribute_not_exists(#state) OR #state = :queued",
            extra={":queued": QUEUED},
        )

    def claim(self, ref: ObjectRef, pipeline: str, task_id: str, worker: str | None, lease_seconds: float) -> Claim:
        """Take a file to process it, unless it already succeeded or another attempt holds a live lease on it.

        The lease (`lease_owner`, `lease_until`) is what keeps two deliveries of one file from running at
        once: its holder renews it while it works; a crashed holder's lease simply runs out. Each claim
        counts an attempt (`attempts`), whatever ended the ones before: an error, a retry, a dead worker.
        """
        owner = uuid.uuid4().hex
        now = time.time()
        started = {"started_at": _iso(_now()), "worker": worker, "reason": None, "parts": None}
        acquired = self._update(
            ref,
            {
                "state": RUNNING,
                "pipeline": pipeline,
                "task_id": task_id,
                **started,
                "lease_owner": owner,
                "lease_until": now + lease_seconds,
            },
            condition=(
                "attribute_not_exists(#state) OR "
                "(#state <> :succeeded AND (#state <> :running OR attribute_not_exists(#lease_until) OR #lease_until < :now))"
            ),
            extra={":succeeded": SUCCEEDED, ":running": RUNNING, ":now": now},
            add={"attempts": 1},
        )
        if acquired is not None:
            return Claim(acquired=True, owner=owner, state=RUNNING, lease_remaining=lease_seconds, attempts=int(acquired["attempts"]))
        entry = self.get(ref.bucket, ref.key, ref.etag) or {}
        remaining = max(0.0, float(entry.get("lease_until") or 0) - time.time())
        return Claim(
            acquired=False,
            owner=None,
            state=entry.get("state", "?"),
            lease_remaining=remaining,
            attempts=entry.get("attempts", 0),
            split=bool(entry.get("parts")),
        )

    def renew(self, ref: ObjectRef, owner: str, lease_seconds: float) -> bool:
        """Extend a lease this attempt holds; False if it was lost (it ran out and another attempt took the file)."""
        return self._write(
            ref,
            {"lease_until": time.time() + lease_seconds},
            condition="#state = :running AND #lease_owner = :owner",
            extra={":running": RUNNING, ":owner": owner},
        )

    def split(self, ref: ObjectRef, owner: str, parts: int, lease_seconds: float) -> bool:
        """Record that a claimed file runs as `parts` parallel tasks, whose last one records its outcome with `owner`.

        Nobody renews the lease meanwhile: it lasts as long as the parts may wait in their queue.
        """
        return self._write(
            ref,
            {"parts": parts, "lease_until": time.time() + lease_seconds},
            condition="#state = :running AND #lease_owner = :owner",
            extra={":running": RUNNING, ":owner": owner},
        )

    def release(self, ref: ObjectRef, owner: str) -> bool:
        """Give a claimed file back (its task retries later): queued again, claimable at once."""
        return self._write(
            ref,
            {"state": QUEUED, "lease_until": None},
            condition="#state = :running AND #lease_owner = :owner",
            extra={":running": RUNNING, ":owner": owner},
        )

    def mark_succeeded(self, ref: ObjectRef, owner: str, outputs: Iterable[str], duration_ms: int, sha256: str | None) -> bool:
        """Record a file's outputs, once: False if this attempt no longer holds the file (another one records it)."""
        return self._write(
            ref,
            {
                "state": SUCCEEDED,
                "outputs": list(outputs),
                "finished_at": _iso(_now()),
                "duration_ms": duration_ms,
                "sha256": sha256,
                "reason": None,
                "lease_until": None,
            },
            condition="#state = :running AND #lease_owner = :owner",
            extra={":running": RUNNING, ":owner": owner},
            add={"completions": 1},
        )

    def mark_failed(self, ref: ObjectRef, owner: str, reason: str, pipeline: str | None = None) -> bool:
        """Record why a file could not be processed, once: False if this attempt no longer holds the file."""
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        values: dict[str, Any] = {"state": FAILED, "reason": reason, "finished_at": _iso(_now()), "lease_until": None}
        if pipeline:
            values["pipeline"] = pipeline
        return self._write(
            ref, values, condition="#state = :running AND #lease_owner = :owner", extra={":running": RUNNING, ":owner": owner}
        )

    def mark_webhook(self, ref: ObjectRef, delivery: dict[str, Any]) -> None:
        """Record how the file's webhook went (delivered, or failed with a reason)."""
        self._update(ref, {"webhook": delivery})

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
        range_key = self.table.indexes[0][2]
        found: list[dict[str, Any]] = []
        today = _now().date()
        for offset in range(days):
            for page in self._day_pages((today - timedelta(days=offset)).isoformat(), newest_first=True):
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

    def _day_pages(self, day: str, newest_first: bool = False) -> Iterator[list[dict[str, Any]]]:
        """The pages of the `recent` index for one day (YYYY-MM-DD, UTC)."""
        index, hash_key, _ = self.table.indexes[0]
        return self._pages(
            TableName=self.table_name,
            IndexName=index,
            KeyConditionExpression="#h = :day",
            ExpressionAttributeNames={"#h": hash_key},
            ExpressionAttributeValues={":day": {"S": day}},
            ScanIndexForward=not newest_first,
        )

    def day(self, day: str) -> list[dict[str, Any]]:
        """Every file entry last updated on `day` (YYYY-MM-DD, UTC), from the `recent` index."""
        return [decode_item(item) for page in self._day_pages(day) for item in page]

    def since(self, moment: datetime, fields: tuple[str, ...] = ("state", "finished_at")) -> list[dict[str, Any]]:
        """The `fields` of every file entry updated at or after `moment` (within the last day), newest first."""
        index, hash_key, range_key = self.table.indexes[0]
        names = {"#h": hash_key, "#r": range_key, **{f"#f{i}": field for i, field in enumerate(fields)}}
        found: list[dict[str, Any]] = []
        for day in sorted({moment.date(), _now().date()}):
            pages = self._pages(
                TableName=self.table_name,
                IndexName=index,
                KeyConditionExpression="#h = :day AND #r >= :since",
                # Only what is asked for: an hour of a busy deployment is thousands of entries.
                ProjectionExpression=", ".join(["#r", *(f"#f{i}" for i in range(len(fields)))]),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":day": {"S": day.isoformat()}, ":since": {"S": _iso(moment)}},
            )
            found += [decode_item(item) for page in pages for item in page]
        return sorted(found, key=lambda i: i[range_key], reverse=True)

    def retry(self, ref: ObjectRef, task_id: str) -> bool:
        """Queue a failed file again (`dropq retry`, the dashboard), with its attempts counted afresh; False if it is not failed."""
        return self._write(
            ref,
            {"state": QUEUED, "task_id": task_id, "queued_at": _iso(_now()), "reason": None, "parts": None, "attempts": 0},
            condition="#state = :failed",
            extra={":failed": FAILED},
            add={"retries": 1},
        )

    def _stuck_condition(self) -> str:
        return (
            "updated_at < :cutoff AND (#state = :queued OR "
            "(#state = :running AND (attribute_not_exists(#lease_until) OR #lease_until < :now)))"
        )

    def requeue(self, ref: ObjectRef, task_id: str, cutoff: str) -> bool:
        """Queue again a file stuck since before `cutoff` (queued, or running with a lease run out); count the sweep."""
        return self._write(
            ref,
            {"state": QUEUED, "task_id": task_id, "queued_at": _iso(_now()), "lease_until": None, "parts": None},
            condition=self._stuck_condition(),
            extra={":cutoff": cutoff, ":queued": QUEUED, ":running": RUNNING, ":now": time.time()},
            add={"sweeps": 1},
        )

    def fail_stuck(self, ref: ObjectRef, cutoff: str, reason: str) -> bool:
        """Record why a file that stays stuck since before `cutoff` will not be tried again."""
        return self._write(
            ref,
            {"state": FAILED, "reason": reason, "finished_at": _iso(_now()), "lease_until": None},
            condition=self._stuck_condition(),
            extra={":cutoff": cutoff, ":queued": QUEUED, ":running": RUNNING, ":now": time.time()},
        )

    def _period_key(self, schedule: str, period: str) -> dict[str, Any]:
        return {"pk": {"S": f"{SCHEDULE_PK}{schedule}"}, "sk": {"S": period}}

    def claim_period(self, schedule: str, period: str, task_id: str, lease_seconds: float) -> Claim:
        """Take a schedule's run for one period, unless it ran already or another run holds a live claim on it."""
        now = time.time()
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._period_key(schedule, period),
                UpdateExpression="SET #state = :running, task_id = :task, lease_until = :until, started_at = :started, #ttl = :ttl",
                ConditionExpression="attribute_not_exists(#state) OR (#state = :running AND lease_until < :now)",
                ExpressionAttributeNames={"#state": "state", "#ttl": self.table.ttl_attribute},
                ExpressionAttributeValues={
                    ":running": {"S": RUNNING},
                    ":task": {"S": task_id},
                    ":until": _encode(now + lease_seconds),
                    ":started": {"S": _iso(_now())},
                    ":ttl": _encode(int(now) + self.ttl_seconds),
                    ":now": _encode(now),
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            item = self.client.get_item(TableName=self.table_name, Key=self._period_key(schedule, period), ConsistentRead=True)
            entry = decode_item(item.get("Item", {}))
            remaining = max(0.0, float(entry.get("lease_until") or 0) - time.time())
            return Claim(acquired=False, owner=None, state=entry.get("state", "?"), lease_remaining=remaining, attempts=0)
        return Claim(acquired=True, owner=task_id, state=RUNNING, lease_remaining=lease_seconds, attempts=1)

    def finish_period(self, schedule: str, period: str, task_id: str, state: str, summary: dict[str, Any]) -> bool:
        """Record how a period's run ended (only the run holding the claim can)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._period_key(schedule, period),
                UpdateExpression="SET #state = :state, summary = :summary, finished_at = :finished",
                ConditionExpression="task_id = :task",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":state": {"S": state},
                    ":summary": _encode(summary),
                    ":finished": {"S": _iso(_now())},
                    ":task": {"S": task_id},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def period(self, schedule: str, period: str) -> dict[str, Any] | None:
        """A schedule's run for one period, or None."""
        item = self.client.get_item(TableName=self.table_name, Key=self._period_key(schedule, period), ConsistentRead=True)
        return decode_item(item["Item"]) if "Item" in item else None

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


@contextmanager
def hold(ledger: Ledger, ref: ObjectRef, owner: str, lease_seconds: float) -> Iterator[threading.Event]:
    """Renew a claimed file's lease every third of its length while the block runs; the event is set if it was lost."""
    lost = threading.Event()
    done = threading.Event()

    def renew() -> None:
        while not done.wait(lease_seconds / 3):
            try:
                if not ledger.renew(ref, owner, lease_seconds):
                    lost.set()
                    return
            except Exception:  # a missed renewal is retried; the lease outlives two of them
                continue

    thread = threading.Thread(target=renew, name="dropq-lease", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        done.set()
        thread.join(timeout=5)


def ledger_for(settings: Any, client: Any = None) -> Ledger:
    """The ledger of a deployment described by `settings` (a `dropq.settings.Settings`)."""
    topology = settings.topology
    table_name = settings.physical_name(topology.ledger_table.name)
    return Ledger(topology.ledger_table, table_name, client or settings.client("dynamodb"), topology.ledger_ttl_seconds)

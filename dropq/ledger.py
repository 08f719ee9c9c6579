"""The ledger: what happened to each dropped file, in DynamoDB.

One item per object version (bucket, key, ETag): pk = "file#s3://bucket/key", sk = ETag, with its
state (queued -> running -> succeeded | failed), timestamps, pipeline, outputs and, on failure,
a reason a person understands. Worker heartbeats live in the same table under pk = "worker", and
outcome counts per minute under pk = "counts#<day>" (dropq/counts.py).

Three indexes (dropq/topology.py), each copying keys only, so that a write which changes no index key
costs them nothing (lease renewals, webhooks, queued -> running): `recent` has every version by the
time it was queued, `open` the files in flight on each queue (entered when queued, left when recorded),
`failed` the failed ones. Their partition keys are sharded (dropq/shards.py): no key takes more than
its share of the traffic, and readers ask every shard.

Exactly-once in effect: a worker `claim`s a file with a lease it renews while it works (`hold`); a
second delivery of the file finds it succeeded (and is skipped) or leased (and waits), so one
attempt at a time runs it and one success is recorded (`completions` counts them).
"""

from __future__ import annotations

import heapq
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dropq.objects import ObjectRef
from dropq.shards import every_shard, sharded
from dropq.topology import TableSpec

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
WORKER_PK = "worker"
# A periodic task's runs: pk = "schedule#<name>", sk = the scheduled time of the period.
SCHEDULE_PK = "schedule#"
# A worker whose heartbeat is older than this is not listed as alive.
WORKER_STALE_SECONDS = 90
# DynamoDB's item size limit is 400 KB; a reason longer than this is cut, never the write refused.
MAX_REASON_CHARS = 2000
# An earlier attempt's reason is cut shorter: the entry may keep twenty.
MAX_HISTORY_REASON_CHARS = 300
# Attributes conditions name as `#name` (`state` is a DynamoDB reserved word).
CONDITION_ATTRIBUTES = ("state", "lease_owner", "lease_until")
# Every attribute a condition may name as `#name` (a reprocessing's names the pipeline and its version too).
CONDITION_NAMES = (*CONDITION_ATTRIBUTES, "pipeline", "pipeline_version")
# The ledger's indexes (dropq/topology.py: the ledger table).
RECENT, OPEN, FAILED_INDEX = "recent", "open", "failed"
# An entry's `history`: its attempts that ended before the last one (whose start, end and worker are the entry's own
# fields), each an `attempt_record`. Each record is written by a write its attempt makes anyway: a retry's release,
# the next attempt's outcome for one that lost its lease, an operator's retry or reprocessing for the attempt it
# closes. A file that succeeds at once stores and writes nothing more; an operator's retry keeps the newest few.
HISTORY = "history"
HISTORY_KEPT = 20
# How an earlier attempt ended, besides a file state: given back to be retried, or lost (its worker stopped).
RETRIED, LOST = "retried", "lost"
# BatchGetItem reads at most 100 keys a call: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html
BATCH_GET_KEYS = 100
# Shards are read side by side by this many threads (boto3 clients are thread-safe).
READERS = 8


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
    # When and where this attempt started, and the record of one before it that lost its lease (if any), which the
    # attempt's own outcome write adds to the entry's history.
    started_at: str | None = None
    worker: str | None = None
    lost: tuple[dict[str, Any], ...] = ()

    def ended(self, outcome: str, reason: str | None = None) -> dict[str, Any]:
        """The record of this attempt, ending now."""
        return attempt_record(self.attempts, self.started_at, self.worker, outcome, reason, finished_at=iso(_now()))


def attempt_record(
    attempt: int, started_at: str | None, worker: str | None, outcome: str, reason: str | None = None, finished_at: str | None = None
) -> dict[str, Any]:
    """One ended attempt as the entry's `history` keeps it (`finished_at` None: it never ended, its lease ran out)."""
    if reason and len(reason) > MAX_HISTORY_REASON_CHARS:
        reason = reason[: MAX_HISTORY_REASON_CHARS - 1] + "…"
    return {
        "attempt": attempt,
        "started_at": started_at,
        "finished_at": finished_at,
        "worker": worker,
        "outcome": outcome,
        "reason": reason,
    }


def closed_history(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """An ended file's history with its last attempt added (the newest `HISTORY_KEPT`): what an operator's retry writes
    before a new attempt replaces the entry's own start, end and worker."""
    history = list(entry.get(HISTORY) or [])
    if entry.get("started_at"):
        outcome = str(entry.get("state"))
        history.append(
            attempt_record(
                int(entry.get("attempts") or 1),
                entry["started_at"],
                entry.get("worker"),
                outcome,
                entry.get("reason"),
                entry.get("finished_at"),
            )
        )
    return history[-HISTORY_KEPT:]


def _now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """The ledger's one time format: ISO 8601 UTC to the millisecond, with a Z ("2026-12-01T20:15:03.120Z")."""
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


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


class Ledger:
    """Reads and writes file states; every transition is one conditional DynamoDB write."""

    def __init__(self, table: TableSpec, table_name: str, client: Any, ttl_seconds: int, default_queue: str = "default") -> None:
        self.table = table
        self.table_name = table_name
        self.client = client
        self.ttl_seconds = ttl_seconds
        self.default_queue = default_queue

    # Index keys: the attributes that place an entry in each index (dropq/topology.py names them).

    def _index_keys(self, index: str, value: str, ref: ObjectRef, at: datetime) -> dict[str, Any]:
        spec = self.table.index(index)
        return {spec.partition_key: sharded(value, file_pk(ref.bucket, ref.key), self.table.shards), spec.sort_key: iso(at)}

    def _index_names(self, index: str) -> tuple[str, str]:
        spec = self.table.index(index)
        return spec.partition_key, spec.sort_key

    def _recent(self, ref: ObjectRef, at: datetime) -> dict[str, Any]:
        return self._index_keys(RECENT, _day(at), ref, at)

    def _open(self, ref: ObjectRef, queue: str, at: datetime) -> dict[str, Any]:
        return self._index_keys(OPEN, queue, ref, at)

    def _failed(self, ref: ObjectRef, at: datetime) -> dict[str, Any]:
        return self._index_keys(FAILED_INDEX, _day(at), ref, at)

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
        """Set attributes, set others only where they are missing (`keep`), add records to its `history` (`append`), ADD
        to counters and REMOVE attributes on an object's entry; return the updated attributes' new values (or, with
        `returns="ALL_OLD"`, the entry as it was), or None when `condition` does not hold (and nothing was written)."""
        now = _now()
        values = {
            **values,
            "bucket": ref.bucket,
            "key": ref.key,
            "size": ref.size,
            "updated_at": iso(now),
            self.table.ttl_attribute: int(now.timestamp()) + self.ttl_seconds,
        }
        names = {f"#a{i}": name for i, name in enumerate(values)}
        placeholders = {f":v{i}": _encode(value) for i, value in enumerate(values.values())}
        sets = [f"#a{i} = :v{i}" for i in range(len(values))]
        for i, (name, value) in enumerate((keep or {}).items()):
            # Written once: an index key that stays the same costs its index no write.
            names[f"#k{i}"], placeholders[f":k{i}"] = name, _encode(value)
            sets.append(f"#k{i} = if_not_exists(#k{i}, :k{i})")
        if append:
            names["#h"], placeholders[":h0"], placeholders[":h1"] = HISTORY, {"L": []}, _encode(list(append))
            sets.append("#h = list_append(if_not_exists(#h, :h0), :h1)")
        expression = "SET " + ", ".join(sets)
        if add:
            names.update({f"#n{i}": name for i, name in enumerate(add)})
            placeholders.update({f":n{i}": _encode(amount) for i, amount in enumerate(add.values())})
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
            "ExpressionAttributeValues": {**placeholders, **{k: _encode(v) for k, v in (extra or {}).items()}},
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
        return decode_item(response.get("Attributes", {}))

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

    def mark_queued(self, ref: ObjectRef, pipeline: str, queue: str, task_id: str) -> bool:
        """Record that a file was enqueued; False (and nothing written) if it is already running or done.

        The file enters the `recent` and `open` indexes; a repeated event of a queued file leaves them as they are.
        """
        now = _now()
        return self._write(
            ref,
            {"state": QUEUED, "pipeline": pipeline, "queue": queue, "task_id": task_id},
            condition="attribute_not_exists(#state) OR #state = :queued",
            extra={":queued": QUEUED},
            keep={**self._recent(ref, now), **self._open(ref, queue, now)},
        )

    def claim(
        self, ref: ObjectRef, pipeline: str, task_id: str, worker: str | None, lease_seconds: float, queue: str | None = None
    ) -> Claim:
        """Take a file to process it, unless it already succeeded or another attempt holds a live lease on it.

        The lease (`lease_owner`, `lease_until`) is what keeps two deliveries of one file from running at
        once: its holder renews it while it works; a crashed holder's lease simply runs out. Each claim
        counts an attempt (`attempts`), whatever ended the ones before: an error, a retry, a dead worker.
        A file claimed without having been queued (a task sent by hand) enters the indexes here. The entry as it was
        comes back with the write (`ALL_OLD`): a running one was an attempt that lost its lease (`Claim.lost`).
        """
        owner = uuid.uuid4().hex
        now, moment = time.time(), _now()
        queue = queue or self.default_queue
        started = {"started_at": iso(moment), "worker": worker, "reason": None, "parts": None}
        before = self._update(
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
            keep={"queue": queue, **self._recent(ref, moment), **self._open(ref, queue, moment)},
            remove=self._index_names(FAILED_INDEX),
            returns="ALL_OLD",
        )
        if before is not None:
            attempts = int(before.get("attempts") or 0) + 1
            lost = ()
            if before.get("state") == RUNNING:
                reason = "its worker stopped (or stalled) before it ended, and its lease ran out"
                lost = (attempt_record(attempts - 1, before.get("started_at"), before.get("worker"), LOST, reason),)
            return Claim(
                acquired=True,
                owner=owner,
                state=RUNNING,
                lease_remaining=lease_seconds,
                attempts=attempts,
                started_at=started["started_at"],
                worker=worker,
                lost=lost,
            )
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
        """Extend a lease this attempt holds; False if it was lost (it ran out and another attempt took the file).

        Only `lease_until` changes: a renewal is bookkeeping, so it moves no index key and no `updated_at`.
        """
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": file_pk(ref.bucket, ref.key)}, "sk": {"S": ref.etag}},
                UpdateExpression="SET #lease_until = :until",
                ConditionExpression="#state = :running AND #lease_owner = :owner",
                ExpressionAttributeNames={f"#{name}": name for name in CONDITION_ATTRIBUTES},
                ExpressionAttributeValues={
                    ":until": _encode(time.time() + lease_seconds),
                    ":running": {"S": RUNNING},
                    ":owner": {"S": owner},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def split(self, ref: ObjectRef, owner: str, parts: int, lease_seconds: float, earlier: Sequence[dict[str, Any]] = ()) -> bool:
        """Record that a claimed file runs as `parts` parallel tasks, whose last one records its outcome with `owner`
        (and `earlier` attempts in its history, as every outcome write does).

        Nobody renews the lease meanwhile: it lasts as long as the parts may wait in their queue.
        """
        return self._write(
            ref,
            {"parts": parts, "lease_until": time.time() + lease_seconds},
            condition="#state = :running AND #lease_owner = :owner",
            extra={":running": RUNNING, ":owner": owner},
            append=earlier,
        )

    def release(self, ref: ObjectRef, owner: str, ended: Sequence[dict[str, Any]] = ()) -> bool:
        """Give a claimed file back (its task retries later): queued again, claimable at once; `ended` (this attempt's
        record, after any it found lost) goes into its history."""
        return self._write(
            ref,
            {"state": QUEUED, "lease_until": None},
            condition="#state = :running AND #lease_owner = :owner",
            extra={":running": RUNNING, ":owner": owner},
            append=ended,
        )

    def mark_succeeded(
        self,
        ref: ObjectRef,
        owner: str,
        outputs: Iterable[str],
        duration_ms: int,
        sha256: str | None,
        version: int = 1,
        earlier: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """Record a file's outputs and the version of the pipeline that made them, once, with `earlier` attempts (one
        that lost its lease) in its history: False if this attempt no longer holds the file (another one records it)."""
        return self._write(
            ref,
            {
                "state": SUCCEEDED,
                "pipeline_version": version,
                "outputs": list(outputs),
                "finished_at": iso(_now()),
                "duration_ms": duration_ms,
                "sha256": sha256,
                "reason": None,
                "lease_until": None,
            },
            condition="#state = :running AND #lease_owner = :owner",
            extra={":running": RUNNING, ":owner": owner},
            add={"completions": 1},
            remove=(*self._index_names(OPEN), *self._index_names(FAILED_INDEX)),
            append=earlier,
        )

    def _failure(self, reason: str) -> dict[str, Any]:
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        return {"state": FAILED, "reason": reason, "finished_at": iso(_now()), "lease_until": None}

    def mark_failed(
        self, ref: ObjectRef, owner: str, reason: str, pipeline: str | None = None, earlier: Sequence[dict[str, Any]] = ()
    ) -> bool:
        """Record why a file could not be processed, once, with `earlier` attempts in its history: False if this attempt
        no longer holds the file."""
        values = self._failure(reason)
        if pipeline:
            values["pipeline"] = pipeline
        return self._write(
            ref,
            {**values, **self._failed(ref, _now())},
            condition="#state = :running AND #lease_owner = :owner",
            extra={":running": RUNNING, ":owner": owner},
            remove=self._index_names(OPEN),
            append=earlier,
        )

    def mark_webhook(self, ref: ObjectRef, delivery: dict[str, Any]) -> None:
        """Record how the file's webhook went (delivered, or failed with a reason). Bookkeeping, as a renewal is: it
        leaves `updated_at`, which orders a key's versions (a late webhook of an older version must not make it the
        newest)."""
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": file_pk(ref.bucket, ref.key)}, "sk": {"S": ref.etag}},
            UpdateExpression="SET webhook = :webhook",
            ExpressionAttributeValues={":webhook": _encode(delivery)},
        )

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

    def versions(self, bucket: str, key: str) -> list[dict[str, Any]]:
        """Every entry of a key (one per object version), most recently updated first: one Query on its partition key."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": file_pk(bucket, key)}},
            "ConsistentRead": True,
        }
        items = [decode_item(item) for page in self._pages(**request) for item in page]
        return sorted(items, key=lambda i: i.get("updated_at", ""), reverse=True)

    def entries(self, keys: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        """The entries of (pk, sk) keys, in their order (those that no longer exist are left out): BatchGetItem, 100 a call."""
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            pending: dict[str, Any] = {
                self.table_name: {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in wanted[start : start + BATCH_GET_KEYS]]}
            }
            while pending:
                response = self.client.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    entry = decode_item(item)
                    found[(entry["pk"], entry["sk"])] = entry
                # DynamoDB may leave keys unread (throughput, 16 MB): asked again until none is left.
                pending = response.get("UnprocessedKeys") or {}
        return [found[key] for key in wanted if key in found]

    def _newest(self, index: str, values: list[str], limit: int, since: str | None = None) -> list[tuple[str, str, str]]:
        """The `limit` newest (sort key, pk, sk) of an index over the partition key `values` (its shards), exactly."""
        return self.index_page(index, values, limit, since)[0]

    def index_page(
        self, index: str, values: list[str], limit: int, since: str | None = None, before: tuple[str, str, str] | None = None
    ) -> tuple[list[tuple[str, str, str]], bool]:
        """The `limit` newest (sort key, pk, sk) of an index over the partition key `values` that are older than `before`
        (a row of an earlier page) and no older than `since`; and whether the index holds more of them past those.

        Two rounds, so that what is read stays near what is shown: each shard is first asked for its few newest
        (`limit` spread over the shards, three times over); only a shard whose every answer is among the `limit`
        newest may hold more of them, and it alone is asked again for up to `limit`. Rows are ordered as whole
        tuples, so that rows sharing a time (to the millisecond) are split between pages exactly: each shard's answer
        is read to the end of the time it stops at. The result is exact.
        """
        hash_key, range_key = self._index_names(index)

        def below(value: str, count: int) -> tuple[list[tuple[str, str, str]], bool]:
            """The shard's newest rows, at least `count` unless it has no more (then False), whole times only."""
            # A key condition names the sort key once: both bounds are one BETWEEN.
            condition = {
                (False, False): "#h = :h",
                (True, False): "#h = :h AND #r >= :since",
                (False, True): "#h = :h AND #r <= :before",
                (True, True): "#h = :h AND #r BETWEEN :since AND :before",
            }[(since is not None, before is not None)]
            names, values_ = {"#h": hash_key}, {":h": {"S": value}}
            if since is not None:
                values_[":since"] = {"S": since}
            if before is not None:
                values_[":before"] = {"S": before[0]}
            if "#r" in condition:
                names["#r"] = range_key
            request: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": index,
                "KeyConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values_,
                "ScanIndexForward": False,
                # One more than asked: a time that differs from the last one kept shows that time is read whole.
                "Limit": count + 1,
            }
            rows: list[tuple[str, str, str]] = []
            for page in self._pages(**request):
                rows += [row for row in ((i[range_key]["S"], i["pk"]["S"], i["sk"]["S"]) for i in page) if before is None or row < before]
                if page:
                    last = page[-1][range_key]["S"]
                    whole = [row for row in rows if row[0] > last]
                    if len(whole) >= count:
                        return sorted(whole, reverse=True), True
            return sorted(rows, reverse=True), False

        if since is not None and before is not None and before[0] < since:
            return [], False
        first = min(limit, 1 + -(-3 * limit // len(values)))
        with ThreadPoolExecutor(max_workers=min(READERS, len(values))) as pool:
            answers = dict(zip(values, pool.map(lambda value: below(value, first), values), strict=True))
            found = {row for rows, _ in answers.values() for row in rows}
            cut = heapq.nlargest(limit, found)
            kth = cut[-1] if len(cut) == limit else None
            again = [v for v, (rows, more) in answers.items() if more and first < limit and (kth is None or rows[-1] >= kth)]
            for value, answer in zip(again, pool.map(lambda value: below(value, limit), again), strict=True):
                answers[value] = answer
                found.update(answer[0])
        newest = heapq.nlargest(limit, found)
        return newest, len(found) > limit or any(more for _, more in answers.values())

    def recent(self, limit: int = 20, days: int = 2) -> list[dict[str, Any]]:
        """The files most recently queued (newest first) in the last `days` days, as they are now.

        Bounded by `limit`, whatever the traffic: one Query of at most `limit` keys per shard of a day, then one
        BatchGetItem of the newest `limit` entries.
        """
        today = _now().date()
        found: list[tuple[str, str, str]] = []
        for offset in range(days):
            day = (today - timedelta(days=offset)).isoformat()
            found += self._newest(RECENT, every_shard(day, self.table.shards), limit)
            if len(found) >= limit:
                break
        newest = heapq.nlargest(limit, found)
        return self.entries((pk, sk) for _, pk, sk in newest)

    def failures(self, since: datetime, until: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The files that failed from `since` (to `until`, now by default) and are still failed, newest first, at most `limit`."""
        until = until or _now()
        found: list[tuple[str, str, str]] = []
        day = since.date()
        while day <= until.date():
            found += self._newest(FAILED_INDEX, every_shard(day.isoformat(), self.table.shards), limit, since=iso(since))
            day += timedelta(days=1)
        newest = heapq.nlargest(limit, (row for row in found if row[0] < iso(until)))
        return self.entries((pk, sk) for _, pk, sk in newest)

    def open_keys(self, queue: str, before: str, page_size: int = BATCH_GET_KEYS) -> Iterator[list[tuple[str, str]]]:
        """Pages of the (pk, sk) keys of files in flight on `queue` since before `before` (ISO time), oldest first per shard."""
        hash_key, range_key = self._index_names(OPEN)
        for value in every_shard(queue, self.table.shards):
            request: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": OPEN,
                "KeyConditionExpression": "#h = :h AND #r < :before",
                "ExpressionAttributeNames": {"#h": hash_key, "#r": range_key},
                "ExpressionAttributeValues": {":h": {"S": value}, ":before": {"S": before}},
                "Limit": page_size,
            }
            for page in self._pages(**request):
                if page:
                    yield [(item["pk"]["S"], item["sk"]["S"]) for item in page]

    def _pages(self, **request: Any) -> Iterator[list[dict[str, Any]]]:
        while True:
            response = self.client.query(**request)
            yield response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def retry(self, ref: ObjectRef, task_id: str, queue: str | None = None, entry: dict[str, Any] | None = None) -> bool:
        """Queue a failed file again (`dropq retry`, the dashboard), with its attempts counted afresh; False if it is not failed.

        It comes back at the top of the `recent` index and into the `open` one, and leaves the `failed` one. With the
        `entry` read before, its last attempt goes into its history.
        """
        now = _now()
        closed = {HISTORY: closed_history(entry)} if entry else {}
        return self._write(
            ref,
            {
                "state": QUEUED,
                "task_id": task_id,
                "reason": None,
                "parts": None,
                "attempts": 0,
                **closed,
                **self._recent(ref, now),
                **self._open(ref, queue or self.default_queue, now),
            },
            condition="#state = :failed",
            extra={":failed": FAILED},
            add={"retries": 1},
            remove=self._index_names(FAILED_INDEX),
        )

    def process_again(
        self,
        ref: ObjectRef,
        task_id: str,
        queue: str,
        condition: str = "",
        extra: dict[str, Any] | None = None,
        entry: dict[str, Any] | None = None,
    ) -> bool:
        """Queue again a succeeded file (`dropq retry --force`), where `condition` also holds; False if it is not one
        (any more). Like a retry, it comes back at the top of `recent` and into `open` (and the `entry` read before
        closes its history); its new outputs replace the old."""
        now = _now()
        closed = {HISTORY: closed_history(entry)} if entry else {}
        return self._write(
            ref,
            {
                "state": QUEUED,
                "task_id": task_id,
                "queue": queue,
                "attempts": 0,
                **closed,
                **self._recent(ref, now),
                **self._open(ref, queue, now),
            },
            condition="#state = :succeeded" + (f" AND {condition}" if condition else ""),
            extra={":succeeded": SUCCEEDED, **(extra or {})},
            add={"reprocessed": 1},
        )

    def reprocess(self, ref: ObjectRef, task_id: str, queue: str, pipeline: str, below: int, entry: dict[str, Any] | None = None) -> bool:
        """Queue again a file that `pipeline` made at a version below `below` (`dropq reprocess`); False if it is not
        such a file (any more)."""
        older = "#pipeline_version < :below"
        if below > 1:
            # Entries from before pipelines had versions were made by version 1.
            older += " OR attribute_not_exists(#pipeline_version)"
        return self.process_again(
            ref, task_id, queue, f"#pipeline = :pipeline AND ({older})", {":pipeline": pipeline, ":below": below}, entry=entry
        )

    def forget_queued(self, ref: ObjectRef, task_id: str) -> bool:
        """Delete the entry of a file queued under `task_id` whose message was never sent (a backfill gives it back);
        False if it has moved on (another delivery queued or took it)."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": file_pk(ref.bucket, ref.key)}, "sk": {"S": ref.etag}},
                ConditionExpression="#state = :queued AND task_id = :task",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":queued": {"S": QUEUED}, ":task": {"S": task_id}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _stuck_condition(self) -> str:
        return (
            "updated_at < :cutoff AND (#state = :queued OR "
            "(#state = :running AND (attribute_not_exists(#lease_until) OR #lease_until < :now)))"
        )

    def requeue(self, ref: ObjectRef, task_id: str, cutoff: str) -> bool:
        """Queue again a file stuck since before `cutoff` (queued, or running with a lease run out); count the sweep."""
        return self._write(
            ref,
            {"state": QUEUED, "task_id": task_id, "requeued_at": iso(_now()), "lease_until": None, "parts": None},
            condition=self._stuck_condition(),
            extra={":cutoff": cutoff, ":queued": QUEUED, ":running": RUNNING, ":now": time.time()},
            add={"sweeps": 1},
        )

    def fail_stuck(self, ref: ObjectRef, cutoff: str, reason: str) -> bool:
        """Record why a file that stays stuck since before `cutoff` will not be tried again."""
        return self._write(
            ref,
            {**self._failure(reason), **self._failed(ref, _now())},
            condition=self._stuck_condition(),
            extra={":cutoff": cutoff, ":queued": QUEUED, ":running": RUNNING, ":now": time.time()},
            remove=self._index_names(OPEN),
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
                    ":started": {"S": iso(_now())},
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
                    ":finished": {"S": iso(_now())},
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
    return Ledger(
        topology.ledger_table,
        table_name,
        client or settings.client("dynamodb"),
        topology.ledger_ttl_seconds,
        default_queue=topology.default_queue,
    )

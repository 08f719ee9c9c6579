"""A file's transitions: (new | queued) -> running (claimed, with a lease) -> succeeded | failed, retries and
reprocessing; every one a conditional write (states.py names its condition)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from dropq.ledger import codec
from dropq.ledger.codec import OUTPUT_NAMES, encode, file_pk, iso, output_names
from dropq.ledger.states import (
    CLAIMABLE,
    CONDITION_ATTRIBUTES,
    FAILED,
    FAILED_INDEX,
    HELD,
    HISTORY,
    IS_FAILED,
    IS_SUCCEEDED,
    MAX_REASON_CHARS,
    NEW_OR_QUEUED,
    OLDER_VERSION,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    UNVERSIONED,
    Claim,
    closed_history,
    lost_record,
)
from dropq.ledger.table import LedgerTable
from dropq.objects import ObjectRef


class FileStates(LedgerTable):
    """Writes a file's state changes; each is one conditional DynamoDB write, False (or a Claim saying why) when its
    condition does not hold."""

    def mark_queued(self, ref: ObjectRef, pipeline: str, queue: str, task_id: str) -> bool:
        """Record that a file was enqueued ahead of its message (a backfill: a second run skips it); False (and nothing
        written) if it is already running or done. A file S3 announces is not: its claim creates its entry.

        The file enters the `recent` index; a second write of a queued file leaves it where it is.
        """
        return self._write(
            ref,
            {"state": QUEUED, "pipeline": pipeline, "queue": queue, "task_id": task_id},
            condition=NEW_OR_QUEUED,
            extra={":queued": QUEUED},
            keep=self._recent(ref, codec.now()),
        )

    def claim(
        self, ref: ObjectRef, pipeline: str, task_id: str, worker: str | None, lease_seconds: float, queue: str | None = None
    ) -> Claim:
        """Take a file to process it, unless it ended (succeeded or failed) or another attempt holds a live lease on it.

        The lease (`lease_owner`, `lease_until`) is what keeps two deliveries of one file from running at
        once: its holder renews it while it works; a crashed holder's lease simply runs out. Each claim
        counts an attempt (`attempts`), whatever ended the ones before: an error, a retry, a dead worker.
        A file's first claim creates its entry (S3's files are not recorded before) and enters it in the `recent`
        index: two write units, and its outcome one more, the whole of a file that succeeds at once. The entry as it was
        comes back with the write (`ALL_OLD`): a running one was an attempt that lost its lease (`Claim.lost`).
        """
        owner = uuid.uuid4().hex
        now, moment = time.time(), codec.now()
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
            condition=CLAIMABLE,
            extra={":queued": QUEUED, ":running": RUNNING, ":now": now},
            add={"attempts": 1},
            keep={"queue": queue, **self._recent(ref, moment)},
            remove=self._index_names(FAILED_INDEX),
            returns="ALL_OLD",
        )
        if before is not None:
            attempts = int(before.get("attempts") or 0) + 1
            lost = lost_record(before)
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
                ConditionExpression=HELD,
                ExpressionAttributeNames={f"#{name}": name for name in CONDITION_ATTRIBUTES},
                ExpressionAttributeValues={
                    ":until": encode(time.time() + lease_seconds),
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
            condition=HELD,
            extra={":running": RUNNING, ":owner": owner},
            append=earlier,
        )

    def release(self, ref: ObjectRef, owner: str, ended: Sequence[dict[str, Any]] = ()) -> bool:
        """Give a claimed file back (its task retries later): queued again, claimable at once; `ended` (this attempt's
        record, after any it found lost) goes into its history."""
        return self._write(
            ref,
            {"state": QUEUED, "lease_until": None, "lease_owner": None},
            condition=HELD,
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
        that lost its lease) in its history: False if this attempt no longer holds the file (another one records it).

        The outputs are stored by their names below the file's output folder (the rest of each key is the entry's own
        pipeline and key), whole if one is elsewhere."""
        keys = list(outputs)
        names = output_names(self.output_prefix, ref.key, keys)
        stored = {"outputs": None, OUTPUT_NAMES: names} if names is not None else {"outputs": keys, OUTPUT_NAMES: None}
        return self._write(
            ref,
            {
                "state": SUCCEEDED,
                "pipeline_version": version,
                **stored,
                "finished_at": iso(codec.now()),
                "duration_ms": duration_ms,
                "sha256": sha256,
                "reason": None,
                "lease_until": None,
                "lease_owner": None,
            },
            condition=HELD,
            extra={":running": RUNNING, ":owner": owner},
            add={"completions": 1},
            remove=self._index_names(FAILED_INDEX),
            append=earlier,
        )

    def _failure(self, reason: str) -> dict[str, Any]:
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        return {"state": FAILED, "reason": reason, "finished_at": iso(codec.now()), "lease_until": None, "lease_owner": None}

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
            {**values, **self._failed(ref, codec.now())},
            condition=HELD,
            extra={":running": RUNNING, ":owner": owner},
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
            ExpressionAttributeValues={":webhook": encode(delivery)},
        )

    def _queued_again(self, ref: ObjectRef, task_id: str, entry: dict[str, Any] | None) -> dict[str, Any]:
        """What an operator's retry or reprocessing writes: queued under a new task, its attempts counted afresh, back
        at the top of `recent`; with the `entry` read before, its last attempt closes its history, and its outputs are
        kept as whole keys (their names are below the folder of its pipeline, which the next claim may change)."""
        closed = {HISTORY: closed_history(entry)} if entry else {}
        outputs = {"outputs": entry.get("outputs") or None, OUTPUT_NAMES: None} if entry else {}
        return {"state": QUEUED, "task_id": task_id, "attempts": 0, **closed, **outputs, **self._recent(ref, codec.now())}

    def retry(self, ref: ObjectRef, task_id: str, queue: str | None = None, entry: dict[str, Any] | None = None) -> bool:
        """Queue a failed file again (`dropq retry`, the dashboard), with its attempts counted afresh; False if it is not failed.

        It comes back at the top of the `recent` index and leaves the `failed` one. With the `entry` read before, its
        last attempt goes into its history.
        """
        return self._write(
            ref,
            {"reason": None, "parts": None, "queue": queue or self.default_queue, **self._queued_again(ref, task_id, entry)},
            condition=IS_FAILED,
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
        (any more). Like a retry, it comes back at the top of `recent` (and the `entry` read before closes its history);
        its new outputs replace the old."""
        return self._write(
            ref,
            {"queue": queue, **self._queued_again(ref, task_id, entry)},
            condition=IS_SUCCEEDED + (f" AND {condition}" if condition else ""),
            extra={":succeeded": SUCCEEDED, **(extra or {})},
            add={"reprocessed": 1},
        )

    def reprocess(self, ref: ObjectRef, task_id: str, queue: str, pipeline: str, below: int, entry: dict[str, Any] | None = None) -> bool:
        """Queue again a file that `pipeline` made at a version below `below` (`dropq reprocess`); False if it is not
        such a file (any more)."""
        older = OLDER_VERSION
        if below > 1:
            # Entries from before pipelines had versions were made by version 1.
            older += f" OR {UNVERSIONED}"
        return self.process_again(
            ref, task_id, queue, f"#pipeline = :pipeline AND ({older})", {":pipeline": pipeline, ":below": below}, entry=entry
        )

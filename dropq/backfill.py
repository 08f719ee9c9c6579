"""Enqueue files already in S3: a backfill of a prefix (or of an S3 Inventory), and the reprocessing of files whose
outputs an older version of their pipeline made.

Both walk the objects page by page in key order (ListObjectsV2's, or the inventory's), look their versions up in the
ledger (BatchGetItem, 100 a call) and enqueue the ones to do through the producer's own path (`enqueue_objects`: a
SendMessageBatch per queue), at a rate the user sets. After each page a checkpoint records where the walk got to, so
a second run after a Ctrl-C or a crash carries on from there. A file's claim takes it once however many messages name
it, so a message sent twice costs a message, never a second run; and no file is left without one:

- a backfill sends a message for each version the ledger has never seen, *then* records it as queued, so that a
  second run (or the restore of a local cloud) skips it. Killed between the two, the next run sends it again;
- reprocessing moves a file from succeeded (by an older version) to queued in one conditional write, then sends its
  message (its claim would skip a succeeded file). A file left queued without its message (the process killed
  between the two, or SQS refusing it) is on a page not checkpointed yet: the next run carries on from that page and
  sends again the files of it queued and still made by an older version;
- a page is checkpointed only once every one of its objects is sent. A Ctrl-C stops the walk between two chunks,
  each sent whole.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlparse

from botocore.exceptions import BotoCoreError, ClientError

from dropq.enqueue import Enqueued, enqueue_objects, side_by_side
from dropq.errors import ActionError
from dropq.ledger import QUEUED, SUCCEEDED, Ledger, file_pk, iso, unheld
from dropq.objects import ObjectRef
from dropq.settings import Settings
from dropq.signals import StopRequest
from dropq.signing import Signer
from dropq.topology import Topology

# Keys a ListObjectsV2 page returns at most, and objects enqueued between two looks at the rate.
PAGE_SIZE = 1000
CHUNK = 100
# The inventory fields a backfill needs (which object, and which version of it), by their names in a CSV inventory's
# fileSchema and in a Parquet or ORC one's columns; and those an inventory of every version adds, which say which
# row is the object as it is now (not an older version, not a delete marker).
INVENTORY_FIELDS = {"Bucket": "bucket", "Key": "key", "Size": "size", "ETag": "e_tag"}
VERSION_FIELDS = {"IsLatest": "is_latest", "IsDeleteMarker": "is_delete_marker"}
INVENTORY_FORMATS = ("CSV", "Parquet", "ORC")


@dataclass(frozen=True)
class Page:
    """Objects in key order, and where the walk is once they are handled (a key, or an inventory position)."""

    objects: list[ObjectRef]
    position: str


@dataclass
class Progress:
    """What a walk did so far, in all its runs: listed, enqueued by pipeline and queue, skipped by the state it found."""

    listed: int = 0
    enqueued: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    ignored: int = 0

    @property
    def enqueued_total(self) -> int:
        return sum(self.enqueued.values())

    def to_dict(self) -> dict[str, Any]:
        return {"listed": self.listed, "enqueued": dict(self.enqueued), "skipped": dict(self.skipped), "ignored": self.ignored}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(data["listed"], Counter(data["enqueued"]), Counter(data["skipped"]), data.get("ignored", 0))


def _finished(path: Path) -> bool:
    """Whether the checkpoint at `path` is of a walk that reached its end (one that does not parse did not)."""
    try:
        return bool(json.loads(path.read_text()).get("done"))
    except (OSError, ValueError, AttributeError):
        return False


@dataclass
class Checkpoint:
    """Where a walk got to, in a JSON file of its own (written whole, then renamed: a crash leaves the last one)."""

    path: Path
    job: str
    position: str = ""
    done: bool = False
    progress: Progress = field(default_factory=Progress)
    # Loaded from a run that stopped before its end (a Ctrl-C, a crash, a refused send), on any page.
    cut_short: bool = False

    @classmethod
    def open(cls, state_dir: str | Path, job: str, restart: bool = False) -> Checkpoint:
        """The checkpoint of `job` in `state_dir`: carried on from when its last run stopped halfway, new otherwise."""
        path = Path(state_dir) / "backfill" / f"{hashlib.sha256(job.encode()).hexdigest()[:16]}.json"
        if restart or not path.exists():
            # Started over after a run cut short: the files it left queued without a message are still sent again.
            return cls(path, job, cut_short=path.exists() and not _finished(path))
        try:
            data = json.loads(path.read_text())
            saved = cls(path, job, data["position"], data["done"], Progress.from_dict(data["progress"]), cut_short=True)
        except (ValueError, KeyError, TypeError) as exc:
            raise ActionError(f"the checkpoint {path} does not parse ({exc}); delete it or pass --restart") from exc
        # A walk that finished starts again from the top: what it enqueued is in the ledger, and is skipped.
        return cls(path, job) if saved.done else saved

    @property
    def resumed(self) -> bool:
        return bool(self.position)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"job": self.job, "position": self.position, "done": self.done, "progress": self.progress.to_dict()}
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(data, indent=1))
        os.replace(partial, self.path)


# --- where the objects come from ------------------------------------------------------------------------------------


def _refused(exc: ClientError, what: str) -> ActionError:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    if code in ("NoSuchBucket", "404"):
        return ActionError(f"{what} does not exist")
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return ActionError(f"{what} is not readable with these credentials ({code})")
    return ActionError(f"{what}: S3 refused: {code} {error.get('Message', '')}".rstrip())


def _ref(bucket: str, key: str, etag: str, size: int | str) -> ObjectRef:
    return ObjectRef(bucket=bucket, key=key, etag=etag.strip('"'), size=int(size))


def listed(s3: Any, bucket: str, prefix: str, after: str = "", page_size: int | None = None) -> Iterator[Page]:
    """The objects below `prefix`, after the key `after`, a ListObjectsV2 page at a time (boto3's paginator)."""
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "PaginationConfig": {"PageSize": page_size or PAGE_SIZE}}
    if after:
        request["StartAfter"] = after
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(**request):
            contents = page.get("Contents", [])
            if contents:
                yield Page([_ref(bucket, o["Key"], o["ETag"], o["Size"]) for o in contents], contents[-1]["Key"])
    except ClientError as exc:
        raise _refused(exc, f"bucket {bucket!r}") from exc


def _read(s3: Any, uri: str) -> bytes:
    """An s3:// object's bytes, or a local file's."""
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        try:
            return s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
        except ClientError as exc:
            raise _refused(exc, uri) from exc
    try:
        return Path(uri).read_bytes()
    except OSError as exc:
        raise ActionError(f"cannot read {uri}: {exc.strerror}") from exc


@dataclass(frozen=True)
class Inventory:
    """An S3 Inventory report, from its manifest.json: the format and fields of its data files, and their keys.

    https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html
    """

    uri: str
    source: str
    destination: str
    format: str
    fields: tuple[str, ...]
    files: tuple[str, ...]

    @classmethod
    def parse(cls, uri: str, text: bytes) -> Inventory:
        try:
            manifest = json.loads(text)
            file_format, schema, files = manifest["fileFormat"], manifest["fileSchema"], manifest["files"]
            source, destination = manifest["sourceBucket"], manifest["destinationBucket"].removeprefix("arn:aws:s3:::")
            keys = tuple(f["key"] for f in files)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ActionError(f"the inventory manifest {uri} does not parse: {exc!r} (expected S3 Inventory's manifest.json)") from exc
        if file_format not in INVENTORY_FORMATS:
            raise ActionError(f"the inventory manifest {uri} is {file_format}; a backfill reads {', '.join(INVENTORY_FORMATS)} inventories")
        if file_format == "CSV":
            fields = tuple(name.strip() for name in schema.split(","))
            missing = [name for name in INVENTORY_FIELDS if name not in fields]
        else:
            # "message s3.inventory { required binary bucket (STRING); ... }" or "struct<bucket:string,...>"
            named = {**INVENTORY_FIELDS, **VERSION_FIELDS}
            fields = tuple(column for column in named.values() if re.search(rf"\b{column}\b", schema))
            missing = [name for name, column in INVENTORY_FIELDS.items() if column not in fields]
        if missing:
            raise ActionError(f"the inventory {uri} has no {', '.join(missing)} field: add it to the inventory's configuration")
        return cls(uri, source, destination, file_format, fields, keys)

    def rows(self, key: str, data: bytes) -> list[tuple[str, str, str, int]]:
        """(bucket, key, etag, size) of each object a data file lists, its keys decoded."""
        where = f"the inventory file s3://{self.destination}/{key}"
        if self.format == "CSV":
            try:
                lines = list(csv.reader(io.StringIO(gzip.decompress(data).decode())))
            except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
                raise ActionError(f"{where} does not parse: {exc}") from exc
            at = {name: self.fields.index(name) for name in (*INVENTORY_FIELDS, *VERSION_FIELDS) if name in self.fields}
            rows = []
            for line in lines:
                if len(line) < len(self.fields):
                    raise ActionError(f"{where} has a row of {len(line)} fields, not {len(self.fields)}: {line}")
                if not _current("IsLatest" in at and line[at["IsLatest"]], "IsDeleteMarker" in at and line[at["IsDeleteMarker"]]):
                    continue
                # CSV inventories URL-encode keys.
                size = line[at["Size"]] or 0
                rows.append((line[at["Bucket"]], unquote_plus(line[at["Key"]]), line[at["ETag"]], int(size)))
            return [row for row in rows if row[2]]
        import pyarrow as pa
        import pyarrow.orc
        import pyarrow.parquet

        columns = list(self.fields)
        try:
            if self.format == "Parquet":
                table = pyarrow.parquet.read_table(pa.BufferReader(data), columns=columns)
            else:
                table = pyarrow.orc.read_table(pa.BufferReader(data), columns=columns)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise ActionError(f"{where} does not parse as {self.format}: {exc}") from exc
        return [
            (r["bucket"], r["key"], r["e_tag"], int(r["size"] or 0))
            for r in table.to_pylist()
            if r["e_tag"] and _current(r.get("is_latest"), r.get("is_delete_marker"))
        ]


def _current(latest: Any, delete_marker: Any) -> bool:
    """Whether an inventory row is an object as it is now: its latest version (when the inventory lists every
    version), not a delete marker. CSV says true and false as text."""

    def true(value: Any) -> bool:
        return value is True or str(value).lower() == "true"

    return (latest in (None, False, "") or true(latest)) and not true(delete_marker)


def inventoried(s3: Any, uri: str, prefix: str, after: str = "", bucket: str | None = None) -> Iterator[Page]:
    """The objects an S3 Inventory of `bucket` lists below `prefix` (their current versions), a data file's rows
    PAGE_SIZE at a time; a position is `<file>:<row>`, the row after which the walk carries on."""
    inventory = Inventory.parse(uri, _read(s3, uri))
    if bucket is not None and inventory.source != bucket:
        raise ActionError(f"the inventory {uri} lists bucket {inventory.source!r}, not this deployment's ({bucket})")
    start_file, start_row = (int(part) for part in after.split(":")) if after else (0, 0)
    for number, key in enumerate(inventory.files):
        if number < start_file:
            continue
        rows = inventory.rows(key, _read(s3, f"s3://{inventory.destination}/{key}"))
        first = start_row if number == start_file else 0
        for start in range(first, len(rows), PAGE_SIZE):
            chunk = rows[start : start + PAGE_SIZE]
            objects = [_ref(bucket, object_key, etag, size) for bucket, object_key, etag, size in chunk if object_key.startswith(prefix)]
            yield Page(objects, f"{number}:{start + len(chunk)}")


# --- the walk -------------------------------------------------------------------------------------------------------


class Pacer:
    """At most `rate` objects a second on average (None: as fast as they go)."""

    def __init__(
        self, rate: float | None, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.started, self.taken = clock(), 0

    def take(self, count: int) -> None:
        if self.rate:
            wait = self.started + self.taken / self.rate - self.clock()
            if wait > 0:
                self.sleep(wait)
        self.taken += count


@dataclass(frozen=True)
class Reprocess:
    """Which succeeded files to do again: those of `pipeline` whose outputs a version below `below` made."""

    pipeline: str
    below: int


def _known(ledger: Ledger, objects: list[ObjectRef]) -> dict[tuple[str, str], dict[str, Any]]:
    entries = ledger.entries((file_pk(ref.bucket, ref.key), ref.etag) for ref in objects)
    return {(entry["pk"], entry["sk"]): entry for entry in entries}


def walk(
    pages: Iterator[Page],
    settings: Settings,
    ledger: Ledger,
    sqs: Any,
    checkpoint: Checkpoint,
    *,
    signer: Signer | None = None,
    rate: float | None = None,
    dry_run: bool = False,
    reprocess: Reprocess | None = None,
    shown: Callable[[Progress], None] = lambda progress: None,
    stop: StopRequest | None = None,
    resend_open: bool = False,
    waiting: Container[tuple[str, str]] = (),
) -> Progress:
    """Enqueue, page by page, the objects to do: new versions (a backfill) or, with `reprocess`, files an older version
    of a pipeline made; checkpoint after each page (not in a dry run, which only counts what it would enqueue).

    Once `stop` is set (a Ctrl-C), the walk raises KeyboardInterrupt between two chunks (a wait for the pace ends
    too), every object of the ones before sent: the next run finds them in the ledger and carries on.

    A backfill also sends again the files queued (or running, their lease run out) for longer than their queue keeps a
    message: theirs is gone. With `resend_open` (a local cloud put back after a stop) it sends again every such file,
    however recent (its message delayed at the stop was not saved), except those a message `waiting` names, by
    (key, ETag).
    """
    stop = stop or StopRequest()
    topology, pacer, progress = settings.topology, Pacer(rate, sleep=stop.wait), checkpoint.progress
    if not dry_run:
        checkpoint.save()  # a run cut short on its first page is carried on too (`cut_short`)
    for page in pages:
        objects = [ref for ref in page.objects if topology.is_inbox_key(ref.key, ref.size)]
        progress.ignored += len(page.objects) - len(objects)
        progress.listed += len(objects)
        if reprocess is not None:
            objects = [ref for ref in objects if topology.route(ref.key).pipeline == reprocess.pipeline]
        known = _known(ledger, objects)
        todo: list[ObjectRef] = []
        for ref in objects:
            entry = known.get((file_pk(ref.bucket, ref.key), ref.etag))
            if reprocess is not None:
                # Entries from before pipelines had versions were made by version 1.
                version = int((entry or {}).get("pipeline_version") or 1)
                # Carrying on, a file of the page cut short may be queued without its message: sent again.
                again = (SUCCEEDED, QUEUED) if checkpoint.cut_short else (SUCCEEDED,)
                if entry is not None and entry.get("state") in again and version < reprocess.below:
                    todo.append(ref)
                else:
                    progress.skipped[_why_not_reprocessed(entry, reprocess)] += 1
            elif (ref.key, ref.etag) in waiting:
                progress.skipped["waiting in a queue"] += 1
            elif entry is None or _message_gone(entry, topology, resend_open):
                todo.append(ref)
            else:
                progress.skipped[str(entry.get("state"))] += 1
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            if stop.is_set():
                raise KeyboardInterrupt
            if dry_run:
                for ref in chunk:
                    place = topology.place(ref.key, ref.size)
                    progress.enqueued[f"{place.pipeline} on {place.queue}"] += 1
                continue
            pacer.take(len(chunk))
            if stop.is_set():
                raise KeyboardInterrupt
            if reprocess is None:
                _backfill(chunk, settings, ledger, sqs, signer, progress)
            else:
                _reprocess(chunk, settings, ledger, sqs, signer, reprocess, progress, known)
            shown(progress)
        checkpoint.position = page.position
        if not dry_run:
            checkpoint.save()
        shown(progress)
    if not dry_run:
        checkpoint.done = True
        checkpoint.save()
    return progress


def _message_gone(entry: dict[str, Any], topology: Topology, resend_open: bool) -> bool:
    """Whether a queued file's message (or a running one's, its lease run out) may be gone: updated longer ago than its
    queue keeps a message, or, with `resend_open`, at all (a local cloud put back, whose delayed messages were not
    saved). A file whose message still waits is claimed once, whichever message comes first."""
    if not unheld(entry):
        return False
    if resend_open:
        return True
    queue = entry.get("queue") if entry.get("queue") in topology.queue_names else topology.default_queue
    kept = datetime.now(UTC) - timedelta(seconds=topology.queue(str(queue)).retention_seconds)
    return str(entry.get("updated_at") or "") < iso(kept)


def _why_not_reprocessed(entry: dict[str, Any] | None, reprocess: Reprocess) -> str:
    if entry is None:
        return "never processed"
    if entry.get("state") != SUCCEEDED:
        return str(entry.get("state"))
    return f"made by version {entry.get('pipeline_version') or 1} or later"


def _count(progress: Progress, items: list[Enqueued]) -> None:
    for item in items:
        progress.enqueued[f"{item.pipeline} on {item.queue}"] += 1


def _backfill(chunk: list[ObjectRef], settings: Settings, ledger: Ledger, sqs: Any, signer: Signer | None, progress: Progress) -> None:
    """Send each file's message, then record the sent ones as queued (one already claimed meanwhile is left as it is)."""
    outcome = enqueue_objects(chunk, settings, sqs, signer)
    _count(progress, outcome.enqueued)

    def mark(item: Enqueued) -> bool:
        return ledger.mark_queued(item.ref, item.pipeline, item.queue, item.task_id)

    for future in side_by_side(mark, outcome.enqueued):
        # A write that fails leaves the file unrecorded: its message is sent, and the next run sends it again.
        with contextlib.suppress(BotoCoreError, ClientError):
            future.result()
    if outcome.failed:
        raise ActionError(_failures(outcome.failed) + "; run again to carry on from the checkpoint")


def _reprocess(
    chunk: list[ObjectRef],
    settings: Settings,
    ledger: Ledger,
    sqs: Any,
    signer: Signer | None,
    reprocess: Reprocess,
    progress: Progress,
    known: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Queue again each file of `chunk` made by an older version; `known` holds their entries as read (for their history)."""

    def mark(item: Enqueued) -> bool:
        entry = known.get((file_pk(item.ref.bucket, item.ref.key), item.ref.etag))
        if (entry or {}).get("state") == QUEUED:
            return True  # queued by a run before whose message may be lost: sent again (its claim takes it once)
        return ledger.reprocess(item.ref, item.task_id, item.queue, reprocess.pipeline, reprocess.below, entry=entry)

    outcome = enqueue_objects(chunk, settings, sqs, signer, mark=mark)
    _count(progress, outcome.enqueued)
    progress.skipped["changed meanwhile"] += outcome.skipped
    if outcome.failed:
        # Left queued; the walk stops before checkpointing this page, and the next run sends them again.
        raise ActionError(_failures(outcome.failed) + "; they are queued in the ledger: run again to send them")


def _failures(failed: dict[ObjectRef, str]) -> str:
    first = "; ".join(f"{ref.uri}: {reason}" for ref, reason in list(failed.items())[:3])
    return f"objects not enqueued: {len(failed)} ({first}{'; ...' if len(failed) > 3 else ''})"


def skipped_summary(progress: Progress) -> str:
    return ", ".join(f"{count:,} {state}" for state, count in sorted(progress.skipped.items()) if count) or "none"

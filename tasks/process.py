"""The `dropq.process` task: fetch one dropped file, run its pipeline, upload outputs, keep the ledger."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from celery.exceptions import Reject, SoftTimeLimitExceeded

from dropq.errors import InputError, PermanentError, TransientError
from dropq.ledger import FAILED, QUEUED, RETRIED, RUNNING, SUCCEEDED, Claim, Ledger, hold
from dropq.objects import ObjectRef
from dropq.observe import log_event
from dropq.protocol import PROCESS_TASK
from dropq.settings import Settings
from tasks import outcomes
from tasks.app import app, settings
from tasks.backoff import backoff
from tasks.chords import plan as parts_plan
from tasks.chords import split_of
from tasks.chords import start as start_parts
from tasks.pipelines import PIPELINES, VERSIONS, Job
from tasks.pipelines.tables import part_name
from tasks.services import clients, events, ledger_writes, superseded
from tasks.storage import S3_MAX_KEY_BYTES, delete_keys, download, upload_folder

# The longest output name each built-in pipeline writes, checked before a file is processed: a table's parts
# (data/part-000000000000.parquet, 30 bytes); the others' ("thumb-512.png", "metadata.json", ...) fit in 16. Longer
# names, another pipeline's, are refused when they are uploaded (tasks/storage.py).
LONGEST_OUTPUT_NAMES = {"tables": len(part_name(0))}
LONGEST_OUTPUT_NAME = 16
# A claimed file's lease, renewed every third of it while its task runs (a file done sooner is never renewed).
# No chattier than it must be: a renewal may fail once and the lease still holds. No longer than it may be: a
# crashed worker's lease runs out before its message comes back (two thirds of a visibility timeout at the
# soonest, once extended; one crashed in its first seconds comes back sooner, and waits for the lease), and a task
# cut short at shutdown, whose message comes back at once, waits this long at most.
LEASE_SECONDS = 24


# A delivery of a file that ended is skipped (a repeated S3 event, a message sent twice), with why.
ENDED = {SUCCEEDED: "it already succeeded", FAILED: "it failed (`dropq retry` tries it again)"}


class LeaseLost(Exception):
    """Another attempt took the file over while this one ran (its lease ran out)."""


def check_input(ref: ObjectRef, pipeline: str, settings: Settings) -> str:
    """Refuse inputs that cannot be processed safely; return the output folder."""
    if pipeline not in PIPELINES:
        raise InputError(f"no pipeline called {pipeline!r}; known: {', '.join(sorted(PIPELINES))}")
    if any(part in ("..", ".") for part in ref.key.split("/")):
        raise InputError("the key contains a '.' or '..' path segment; outputs could escape their folder")
    if ref.key.endswith("/"):
        raise InputError(
            "the key ends in '/', which S3's console and tools show as a folder, not a file: "
            "upload it under a name that does not end in '/'"
        )
    if ref.size == 0:
        raise InputError("the file is empty (0 bytes): there is nothing to process")
    if ref.size > settings.max_input_bytes:
        raise InputError(f"the file is {ref.size} bytes, over the {settings.max_input_bytes}-byte limit for inputs")
    folder = settings.topology.output_folder(pipeline, ref.key)
    if len(folder.encode("utf-8")) + LONGEST_OUTPUT_NAMES.get(pipeline, LONGEST_OUTPUT_NAME) > S3_MAX_KEY_BYTES:
        raise InputError(f"the key is too long: its outputs' keys would exceed S3's {S3_MAX_KEY_BYTES}-byte limit")
    return folder


def run_pipeline(ref: ObjectRef, pipeline: str, s3: Any, settings: Settings, lost: threading.Event) -> tuple[list[str], str]:
    """Download, process and upload one file; return (output keys, sha256). No outputs remain on failure.

    Once `lost` is set another attempt owns the file and its outputs: this one uploads and deletes nothing.
    """
    folder = check_input(ref, pipeline, settings)
    with tempfile.TemporaryDirectory(prefix="dropq-") as scratch:
        source = Path(scratch) / "input"
        out_dir = Path(scratch) / "out"
        out_dir.mkdir()
        sha256 = download(s3, ref, source)
        PIPELINES[pipeline](Job(ref=ref, source=source, sha256=sha256, out_dir=out_dir, output_folder=folder))
        expected = sorted(folder + p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
        if lost.is_set():
            raise LeaseLost(ref.uri)
        try:
            keys = upload_folder(s3, ref.bucket, out_dir, folder)
        except BaseException:
            if not lost.is_set():
                delete_keys(s3, ref.bucket, expected)
            raise
    return keys, sha256


def task_input(args: tuple[Any, ...], fields: dict[str, Any]) -> tuple[ObjectRef, str]:
    """The file and pipeline a task message names; ValueError saying what is wrong with it."""
    if args:
        raise ValueError(f"expected keyword arguments only, got {len(args)} positional ones")
    expected = {"bucket": str, "key": str, "etag": str, "size": int, "pipeline": str}
    missing = sorted(set(expected) - set(fields))
    if missing:
        raise ValueError(f"the message lacks {', '.join(missing)}")
    unknown = sorted(set(fields) - set(expected) - {"version_id"})
    if unknown:
        raise ValueError(f"the message has unknown fields {', '.join(unknown)}")
    for name, kind in expected.items():
        if not isinstance(fields[name], kind) or isinstance(fields[name], bool) or fields[name] == "":
            raise ValueError(f"the message's {name} is {fields[name]!r}, not a {kind.__name__}")
    if fields["size"] < 0:
        raise ValueError(f"the message's size is {fields['size']}, below 0")
    version = fields.get("version_id")
    if version is not None and not isinstance(version, str):
        raise ValueError(f"the message's version_id is {version!r}, not a string")
    return ObjectRef.from_dict(fields), fields["pipeline"]


@app.task(name=PROCESS_TASK, bind=True, acks_late=True, throws=(InputError, PermanentError))
def process(self: Any, *args: Any, **fields: Any) -> dict[str, Any]:
    """Process one dropped file, once in effect however often it is delivered; the ledger records the outcome.

    Its fields are those of an `ObjectRef` and a `pipeline` (dropq/enqueue.py). A message without
    them names no file to record a failure against: it is rejected, towards the dead-letter queue.
    """
    task_id = self.request.id
    try:
        ref, pipeline = task_input(args, fields)
    except ValueError as exc:
        key = fields.get("key") if isinstance(fields.get("key"), str) else None
        log_event(events, "rejected", task_id=task_id, state="rejected", level="error", key=key, reason=f"{exc} (to the dead-letter queue)")
        raise Reject(str(exc), requeue=False) from exc
    s3, ledger, leases = clients()
    queue = (self.request.delivery_info or {}).get("routing_key")
    with ledger_writes(task_id):
        claim = ledger.claim(ref, pipeline, task_id, worker=self.request.hostname, lease_seconds=LEASE_SECONDS, queue=queue)
    if not claim.acquired:
        if claim.state in ENDED or (claim.state == RUNNING and claim.split):
            why = ENDED.get(claim.state, "it runs in parts, which record its outcome")
            log_event(events, "skipped", ref=ref, task_id=task_id, state=claim.state, reason=f"duplicate delivery: {why}")
            return {"state": "skipped", "key": ref.key}
        # Another delivery of this file is running (or its worker died and its lease has not run out yet).
        # Not an attempt: this may repeat while the other attempt keeps its lease, at most its time limit.
        countdown = max(1, min(LEASE_SECONDS / 3, claim.lease_remaining + 1))
        log_event(events, "retry", ref=ref, task_id=task_id, state=claim.state, countdown=countdown, reason="another attempt holds it")
        raise self.retry(countdown=countdown, max_retries=self.request.retries + 1)
    # At DEBUG: the ledger holds when and where an attempt started; a line per file more is a fifth of its log bytes.
    log_event(
        events, "started", ref=ref, task_id=task_id, state=RUNNING, level="debug", pipeline=pipeline, queue=queue, attempt=claim.attempts
    )
    return run_claimed(self, ref, pipeline, claim, s3, ledger, leases)


def failure_reason(exc: BaseException, pipeline: str) -> str:
    """The reason the ledger records for an error that ends an attempt for good, as a person reads it."""
    if isinstance(exc, (InputError, PermanentError)):
        return str(exc)
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"processing took longer than the {app.conf.task_soft_time_limit}s time limit; it was stopped"
    return f"internal error in the {pipeline} pipeline: {type(exc).__name__}: {exc}"


class Attempt:
    """One claimed attempt at a file: the one place each of its outcomes is recorded (the ledger, the outcome log line
    and metrics, the tally, the webhook), or the file given back to be retried."""

    def __init__(self, task: Any, ref: ObjectRef, pipeline: str, claim: Claim, s3: Any, ledger: Ledger) -> None:
        self.task, self.ref, self.pipeline, self.claim, self.s3, self.ledger = task, ref, pipeline, claim, s3, ledger
        self.task_id, self.owner, self.attempts = task.request.id, str(claim.owner), claim.attempts
        self.started = time.monotonic()

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    @property
    def _retried(self) -> int | None:
        """The attempt's number for its outcome line, left out for a first attempt (most files: the ledger has it)."""
        return self.attempts if self.attempts > 1 else None

    def failed(self, reason: str) -> dict[str, Any]:
        """Record that the file failed for `reason` (unless another attempt took it over)."""
        with ledger_writes(self.task_id):
            recorded = self.ledger.mark_failed(self.ref, self.owner, reason, self.pipeline, earlier=self.claim.lost)
        if not recorded:
            return superseded(self.ref, self.task_id, self.pipeline)
        return outcomes.failed(
            self.ref, self.pipeline, self.task_id, reason, self._elapsed_ms(), self.s3, self.ledger, attempt=self._retried
        )

    def succeeded(self, outputs: list[str], sha256: str) -> dict[str, Any]:
        """Record the file's outputs (unless another attempt took it over)."""
        duration_ms = self._elapsed_ms()
        with ledger_writes(self.task_id):
            recorded = self.ledger.mark_succeeded(
                self.ref, self.owner, outputs, duration_ms, sha256, version=VERSIONS.get(self.pipeline, 1), earlier=self.claim.lost
            )
        if not recorded:
            return superseded(self.ref, self.task_id, self.pipeline)
        told = outcomes.succeeded(self.ref, self.pipeline, self.task_id, outputs, duration_ms, self.s3, self.ledger, attempt=self._retried)
        return {**told, "sha256": sha256}

    def give_back(self, exc: TransientError) -> NoReturn:
        """Give the file back to be retried after a backoff, this attempt in its history; raises Celery's Retry."""
        countdown = backoff(self.attempts - 1)
        reason = f"transient error: {exc}"
        with ledger_writes(self.task_id):
            self.ledger.release(self.ref, self.owner, ended=[*self.claim.lost, self.claim.ended(RETRIED, reason)])
        details = {"pipeline": self.pipeline, "countdown": countdown, "attempt": self.attempts, "reason": reason}
        log_event(events, "retry", ref=self.ref, task_id=self.task_id, state=QUEUED, level="warning", **details)
        raise self.task.retry(exc=exc, countdown=countdown, max_retries=self.task.request.retries + 1) from exc

    def split(self, parts: int, group: str, queue: str) -> dict[str, Any]:
        """Record that the file runs as `parts` tasks of a chord, whose callback records its outcome."""
        # From here the lease lasts as long as the parts may wait in their queue: nobody renews it.
        with ledger_writes(self.task_id):
            self.ledger.split(
                self.ref, self.owner, parts, lease_seconds=settings.topology.queue(queue).retention_seconds, earlier=self.claim.lost
            )
        log_event(
            events,
            "split",
            ref=self.ref,
            task_id=self.task_id,
            state=RUNNING,
            pipeline=self.pipeline,
            queue=queue,
            parts=parts,
            group=group,
        )
        return {"state": "split", "key": self.ref.key, "parts": parts, "group": group}


def run_claimed(task: Any, ref: ObjectRef, pipeline: str, claim: Claim, s3: Any, ledger: Ledger, leases: Ledger) -> dict[str, Any]:
    """Run a file this attempt claimed, and record how it ended (or give it back to be retried)."""
    attempt = Attempt(task, ref, pipeline, claim, s3, ledger)
    if claim.attempts > settings.max_retries + 1:
        # Every attempt counts, however it ended: a file whose worker keeps dying stops here, with a reason.
        return attempt.failed(
            f"started {claim.attempts - 1} times without finishing (its worker process died each time, out of memory or killed)"
        )
    with hold(leases, ref, str(claim.owner), LEASE_SECONDS) as lost:
        try:
            split, parts = split_of(pipeline), []
            if split is not None:
                check_input(ref, pipeline, settings)
                parts = parts_plan(split, ref, s3)
            if len(parts) > 1:
                queue = (task.request.delivery_info or {}).get("routing_key") or settings.topology.default_queue
                group = start_parts(ref, pipeline, parts, str(claim.owner), queue)
            else:
                outputs, sha256 = run_pipeline(ref, pipeline, s3, settings, lost)
        except LeaseLost:
            return superseded(ref, task.request.id, pipeline)
        except TransientError as exc:
            if claim.attempts <= settings.max_retries:
                attempt.give_back(exc)
            attempt.failed(f"gave up after {claim.attempts} attempts: {exc}")
            raise
        except Exception as exc:  # SoftTimeLimitExceeded among them
            attempt.failed(failure_reason(exc, pipeline))
            raise
        if len(parts) <= 1:
            return attempt.succeeded(outputs, sha256)
    return attempt.split(len(parts), group, queue)

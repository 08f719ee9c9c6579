"""The `dropq.process` task: fetch one dropped file, run its pipeline, upload outputs, keep the ledger."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from celery.exceptions import Reject, SoftTimeLimitExceeded

from dropq.errors import InputError, PermanentError, TransientError
from dropq.ledger import FAILED, QUEUED, RETRIED, RUNNING, SUCCEEDED, Claim, Ledger, hold
from dropq.objects import ObjectRef
from dropq.observe import log_event, log_outcome
from dropq.protocol import PROCESS_TASK
from dropq.settings import Settings
from tasks.app import app, settings
from tasks.backoff import backoff
from tasks.parts import plan as parts_plan
from tasks.parts import split_of
from tasks.parts import start as start_parts
from tasks.pipelines import PIPELINES, VERSIONS, Job
from tasks.services import clients, events, ledger_writes, service, superseded
from tasks.storage import delete_keys, download, upload_folder
from tasks.tally import record
from tasks.webhooks import notify

# S3 keys are at most 1024 bytes of UTF-8: https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html
S3_MAX_KEY_BYTES = 1024
# The longest output name a built-in pipeline writes ("thumb-512.png", "metadata.json", ...).
LONGEST_OUTPUT_NAME = 16
# A claimed file's lease, renewed every third of it while its task runs (a file done sooner is never renewed).
# No chattier than it must be: a renewal may fail once and the lease still holds. No longer than it may be: a
# crashed worker's lease runs out before its message comes back (two thirds of a visibility timeout at the
# soonest), and a task cut short at shutdown, whose message comes back at once, waits this long at most.
LEASE_SECONDS = 24


class LeaseLost(Exception):
    """Another attempt took the file over while this one ran (its lease ran out)."""


def check_input(ref: ObjectRef, pipeline: str, settings: Settings) -> str:
    """Refuse inputs that cannot be processed safely; return the output folder."""
    if pipeline not in PIPELINES:
        raise InputError(f"no pipeline called {pipeline!r}; known: {', '.join(sorted(PIPELINES))}")
    if any(part in ("..", ".") for part in ref.key.split("/")):
        raise InputError("the key contains a '.' or '..' path segment; outputs could escape their folder")
    if ref.size == 0:
        raise InputError("the file is empty (0 bytes): there is nothing to process")
    if ref.size > settings.max_input_bytes:
        raise InputError(f"the file is {ref.size} bytes, over the {settings.max_input_bytes}-byte limit for inputs")
    folder = settings.topology.output_folder(pipeline, ref.key)
    if len(folder.encode("utf-8")) + LONGEST_OUTPUT_NAME > S3_MAX_KEY_BYTES:
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
        if claim.state == SUCCEEDED or (claim.state == RUNNING and claim.split):
            why = "it already succeeded" if claim.state == SUCCEEDED else "it runs in parts, which record its outcome"
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


def run_claimed(task: Any, ref: ObjectRef, pipeline: str, claim: Claim, s3: Any, ledger: Ledger, leases: Ledger) -> dict[str, Any]:
    """Run a file this attempt claimed, and record how it ended (or give it back to be retried)."""
    task_id, owner, attempts = task.request.id, str(claim.owner), claim.attempts
    started = time.monotonic()

    def failed(reason: str) -> None:
        with ledger_writes(task_id):
            recorded = ledger.mark_failed(ref, owner, reason, pipeline, earlier=claim.lost)
        if not recorded:
            superseded(ref, task_id, pipeline)
            return
        duration_ms = int((time.monotonic() - started) * 1000)
        log_outcome(events, service, ref, task_id, pipeline, succeeded=False, duration_ms=duration_ms, reason=reason, attempt=attempts)
        record(pipeline, succeeded=False, duration_ms=duration_ms)
        notify(ref, {"state": FAILED, "pipeline": pipeline, "reason": reason, "task_id": task_id}, s3, ledger)

    if attempts > settings.max_retries + 1:
        # Every attempt counts, however it ended: a file whose worker keeps dying stops here, with a reason.
        reason = f"started {attempts - 1} times without finishing (its worker process died each time, out of memory or killed)"
        failed(reason)
        return {"state": "failed", "key": ref.key, "reason": reason}

    parts: list[dict[str, Any]] = []
    with hold(leases, ref, owner, LEASE_SECONDS) as lost:
        try:
            split = split_of(pipeline)
            if split is not None:
                check_input(ref, pipeline, settings)
                parts = parts_plan(split, ref, s3)
            if len(parts) > 1:
                queue = (task.request.delivery_info or {}).get("routing_key") or settings.topology.default_queue
                group = start_parts(ref, pipeline, parts, owner, queue)
            else:
                outputs, sha256 = run_pipeline(ref, pipeline, s3, settings, lost)
        except LeaseLost:
            return superseded(ref, task_id, pipeline)
        except (InputError, PermanentError) as exc:
            failed(str(exc))
            raise
        except TransientError as exc:
            if attempts > settings.max_retries:
                failed(f"gave up after {attempts} attempts: {exc}")
                raise
            countdown = backoff(attempts - 1)
            with ledger_writes(task_id):
                ledger.release(ref, owner, ended=[*claim.lost, claim.ended(RETRIED, f"transient error: {exc}")])
            details = {"pipeline": pipeline, "countdown": countdown, "attempt": attempts, "reason": f"transient error: {exc}"}
            log_event(events, "retry", ref=ref, task_id=task_id, state=QUEUED, level="warning", **details)
            raise task.retry(exc=exc, countdown=countdown, max_retries=task.request.retries + 1) from exc
        except SoftTimeLimitExceeded:
            failed(f"processing took longer than the {app.conf.task_soft_time_limit}s time limit; it was stopped")
            raise
        except Exception as exc:
            failed(f"internal error in the {pipeline} pipeline: {type(exc).__name__}: {exc}")
            raise
        if len(parts) <= 1:
            duration_ms = int((time.monotonic() - started) * 1000)
            with ledger_writes(task_id):
                succeeded = ledger.mark_succeeded(
                    ref, owner, outputs, duration_ms, sha256, version=VERSIONS.get(pipeline, 1), earlier=claim.lost
                )
            if not succeeded:
                return superseded(ref, task_id, pipeline)
            log_outcome(
                events, service, ref, task_id, pipeline, succeeded=True, duration_ms=duration_ms, outputs=len(outputs), attempt=attempts
            )
            record(pipeline, succeeded=True, duration_ms=duration_ms)
            outcome = {"state": SUCCEEDED, "pipeline": pipeline, "outputs": outputs, "duration_ms": duration_ms, "task_id": task_id}
            notify(ref, outcome, s3, ledger)
    if len(parts) > 1:
        # From here the lease lasts as long as the parts may wait in their queue: nobody renews it.
        with ledger_writes(task_id):
            ledger.split(ref, owner, len(parts), lease_seconds=settings.topology.queue(queue).retention_seconds, earlier=claim.lost)
        log_event(events, "split", ref=ref, task_id=task_id, state=RUNNING, pipeline=pipeline, queue=queue, parts=len(parts), group=group)
        return {"state": "split", "key": ref.key, "parts": len(parts), "group": group}
    return {"state": "succeeded", "key": ref.key, "outputs": outputs, "sha256": sha256}

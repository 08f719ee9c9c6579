"""The `dropq.process` task: fetch one dropped file, run its pipeline, upload outputs, keep the ledger."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from celery.exceptions import Reject, SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval

from dropq.errors import InputError, TransientError
from dropq.ledger import SUCCEEDED, Ledger, hold, ledger_for
from dropq.objects import ObjectRef
from dropq.protocol import PROCESS_TASK
from dropq.settings import Settings
from tasks.app import app, settings
from tasks.pipelines import PIPELINES, Job
from tasks.storage import delete_keys, download, upload_folder

logger = logging.getLogger("dropq.worker")

# S3 keys are at most 1024 bytes of UTF-8: https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html
S3_MAX_KEY_BYTES = 1024
# The longest output name a built-in pipeline writes ("thumb-512.png", "metadata.json", ...).
LONGEST_OUTPUT_NAME = 16
RETRY_BACKOFF_FACTOR = 2
RETRY_BACKOFF_MAX = 300
# A claimed file's lease: renewed every third of it while its task runs; a crashed worker's runs out this
# long after the crash, before its message comes back (at least two thirds of a visibility timeout).
LEASE_SECONDS = 15

_clients: dict[int, tuple[Any, Ledger]] = {}


def clients() -> tuple[Any, Ledger]:
    """This process's S3 client and ledger (boto3 clients must not cross a fork, so one per pid)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = (settings.client("s3"), ledger_for(settings))
    return _clients[pid]


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


def run_pipeline(ref: ObjectRef, pipeline: str, s3: Any, settings: Settings) -> tuple[list[str], str]:
    """Download, process and upload one file; return (output keys, sha256). No outputs remain on failure."""
    folder = check_input(ref, pipeline, settings)
    with tempfile.TemporaryDirectory(prefix="dropq-") as scratch:
        source = Path(scratch) / "input"
        out_dir = Path(scratch) / "out"
        out_dir.mkdir()
        sha256 = download(s3, ref, source)
        PIPELINES[pipeline](Job(ref=ref, source=source, sha256=sha256, out_dir=out_dir, output_folder=folder))
        expected = sorted(folder + p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
        try:
            keys = upload_folder(s3, ref.bucket, out_dir, folder)
        except BaseException:
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


@app.task(name=PROCESS_TASK, bind=True, acks_late=True, max_retries=settings.max_retries, throws=(InputError,))
def process(self: Any, *args: Any, **fields: Any) -> dict[str, Any]:
    """Process one dropped file, once in effect however often it is delivered; the ledger records the outcome.

    Its fields are those of an `ObjectRef` and a `pipeline` (lambdas/producer/enqueue.py). A message without
    them names no file to record a failure against: it is rejected, towards the dead-letter queue.
    """
    try:
        ref, pipeline = task_input(args, fields)
    except ValueError as exc:
        logger.error("task %s: rejected, towards the dead-letter queue: %s", self.request.id, exc)
        raise Reject(str(exc), requeue=False) from exc
    key, etag = ref.key, ref.etag
    s3, ledger = clients()
    task_id = self.request.id
    attempt = self.request.retries + 1
    claim = ledger.claim(ref, pipeline, task_id, attempt=attempt, worker=self.request.hostname, lease_seconds=LEASE_SECONDS)
    if not claim.acquired:
        if claim.state == SUCCEEDED:
            logger.info("task %s: %s (etag %s) already succeeded; duplicate delivery skipped", task_id, ref.uri, etag)
            return {"state": "skipped", "key": key}
        # Another delivery of this file is running (or its worker died and its lease has not run out yet).
        countdown = max(1, min(LEASE_SECONDS / 3, claim.lease_remaining + 1))
        logger.info("task %s: %s is being processed by another attempt; checking again in %.0fs", task_id, ref.uri, countdown)
        # Not a failure: the check may repeat as long as the other attempt keeps its lease (at most its time limit).
        raise self.retry(countdown=countdown, max_retries=self.request.retries + 1)
    started = time.monotonic()
    with hold(ledger, ref, claim.owner, LEASE_SECONDS):
        try:
            outputs, sha256 = run_pipeline(ref, pipeline, s3, settings)
        except InputError as exc:
            ledger.mark_failed(ref, str(exc), pipeline, owner=claim.owner)
            raise
        except TransientError as exc:
            if self.request.retries >= self.max_retries:
                ledger.mark_failed(ref, f"gave up after {self.request.retries + 1} attempts: {exc}", pipeline, owner=claim.owner)
                raise
            countdown = get_exponential_backoff_interval(RETRY_BACKOFF_FACTOR, self.request.retries, RETRY_BACKOFF_MAX, full_jitter=True)
            logger.warning("task %s: %s: transient error, retry in %ss: %s", task_id, ref.uri, countdown, exc)
            ledger.release(ref, claim.owner)
            raise self.retry(exc=exc, countdown=countdown) from exc
        except SoftTimeLimitExceeded:
            limit = app.conf.task_soft_time_limit
            ledger.mark_failed(ref, f"processing took longer than the {limit}s time limit; it was stopped", pipeline, owner=claim.owner)
            raise
        except Exception as exc:
            ledger.mark_failed(ref, f"internal error in the {pipeline} pipeline: {type(exc).__name__}: {exc}", pipeline, owner=claim.owner)
            raise
        duration_ms = int((time.monotonic() - started) * 1000)
        if not ledger.mark_succeeded(ref, claim.owner, outputs, duration_ms, sha256):
            logger.warning("task %s: %s: lost its lease while running; the attempt that took over records the outcome", task_id, ref.uri)
            return {"state": "superseded", "key": key}
    logger.info("task %s: %s succeeded in %d ms with %d outputs", task_id, ref.uri, duration_ms, len(outputs))
    return {"state": "succeeded", "key": key, "outputs": outputs, "sha256": sha256}

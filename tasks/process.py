"""The `dropq.process` task: fetch one dropped file, run its pipeline, upload outputs, keep the ledger."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from celery.utils.time import get_exponential_backoff_interval

from dropq.errors import InputError, TransientError
from dropq.ledger import Ledger, ledger_for
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


@app.task(name=PROCESS_TASK, bind=True, acks_late=True, max_retries=settings.max_retries, throws=(InputError,))
def process(self: Any, bucket: str, key: str, etag: str, size: int, pipeline: str, version_id: str | None = None) -> dict[str, Any]:
    """Process one dropped file; the ledger records the outcome, whatever it is."""
    ref = ObjectRef(bucket=bucket, key=key, etag=etag, size=size, version_id=version_id)
    s3, ledger = clients()
    task_id = self.request.id
    if not ledger.mark_running(ref, pipeline, task_id, attempt=self.request.retries + 1, worker=self.request.hostname):
        logger.info("task %s: %s (etag %s) already succeeded; duplicate delivery skipped", task_id, ref.uri, etag)
        return {"state": "skipped", "key": key}
    started = time.monotonic()
    try:
        outputs, sha256 = run_pipeline(ref, pipeline, s3, settings)
    except InputError as exc:
        ledger.mark_failed(ref, str(exc), pipeline)
        raise
    except TransientError as exc:
        if self.request.retries >= self.max_retries:
            ledger.mark_failed(ref, f"gave up after {self.request.retries + 1} attempts: {exc}", pipeline)
            raise
        countdown = get_exponential_backoff_interval(RETRY_BACKOFF_FACTOR, self.request.retries, RETRY_BACKOFF_MAX, full_jitter=True)
        logger.warning("task %s: %s: transient error, retry in %ss: %s", task_id, ref.uri, countdown, exc)
        raise self.retry(exc=exc, countdown=countdown) from exc
    except Exception as exc:
        ledger.mark_failed(ref, f"internal error in the {pipeline} pipeline: {type(exc).__name__}: {exc}", pipeline)
        raise
    duration_ms = int((time.monotonic() - started) * 1000)
    ledger.mark_succeeded(ref, outputs, duration_ms, sha256)
    logger.info("task %s: %s succeeded in %d ms with %d outputs", task_id, ref.uri, duration_ms, len(outputs))
    return {"state": "succeeded", "key": key, "outputs": outputs, "sha256": sha256}

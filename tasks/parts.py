"""A file processed in parts side by side: a Celery chord of `dropq.part` tasks and a `dropq.combine` callback.

The task that claimed the file plans the parts (`Split.plan`) and starts the chord on its own queue; the
ledger keeps the file `running` under that claim until the callback records its outcome. The chord
completes through the DynamoDB result backend's atomic counter (no `celery.chord_unlock` polling).

A part never raises for a bad file: it returns its error, so that the callback always runs and records
the file as failed with the first part's reason, after deleting every output the parts wrote. A part that
cannot run at all (its worker keeps dying) ends in the dead-letter queue; redriven, the chord goes on.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from dropq.errors import InputError, PermanentError, TransientError
from dropq.objects import ObjectRef
from tasks import outcomes
from tasks.app import app, settings
from tasks.backoff import backoff
from tasks.chords import COMBINE_TASK, PART_TASK, read_range, split_of
from tasks.pipelines import VERSIONS, Job
from tasks.services import clients, ledger_writes, superseded
from tasks.storage import delete_keys, download, upload_folder

logger = logging.getLogger("dropq.worker")


# A part's result is what the chord's callback reads: the one task whose result is stored (task_ignore_result is on).
@app.task(name=PART_TASK, bind=True, acks_late=True, ignore_result=False)
def part(self: Any, *, pipeline: str, index: int, args: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Run one part of a file; return its outputs and result, or the reason it failed."""
    ref, split = ObjectRef.from_dict(fields), split_of(pipeline)
    if split is None:
        return {"index": index, "error": f"no split pipeline called {pipeline!r} on this worker"}
    s3 = clients()[0]
    folder = settings.topology.output_folder(pipeline, ref.key)
    outputs: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dropq-part-") as scratch:
        source, out_dir = Path(scratch) / "input", Path(scratch) / "out"
        out_dir.mkdir()
        try:
            if "range" in args:
                source.write_bytes(read_range(s3, ref, *args["range"]))
                sha256 = None
            else:
                sha256 = download(s3, ref, source)
            result = split.part(Job(ref=ref, source=source, sha256=sha256 or "", out_dir=out_dir, output_folder=folder), args)
            outputs = sorted(folder + p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
            upload_folder(s3, ref.bucket, out_dir, folder)
        except TransientError as exc:
            delete_keys(s3, ref.bucket, outputs)
            if self.request.retries < settings.max_retries:
                countdown = backoff(self.request.retries)
                logger.warning("part %d of %s: transient error, retry in %ss: %s", index, ref.uri, countdown, exc)
                raise self.retry(exc=exc, countdown=countdown, max_retries=settings.max_retries) from exc
            return {"index": index, "error": f"gave up after {self.request.retries + 1} attempts: {exc}"}
        except (InputError, PermanentError) as exc:
            return {"index": index, "error": str(exc)}
        except SoftTimeLimitExceeded:
            delete_keys(s3, ref.bucket, outputs)
            return {"index": index, "error": f"processing took longer than the {app.conf.task_soft_time_limit}s time limit; it was stopped"}
        except Exception as exc:
            logger.exception("part %d of %s failed", index, ref.uri)
            delete_keys(s3, ref.bucket, outputs)
            return {"index": index, "error": f"internal error in the {pipeline} pipeline: {type(exc).__name__}: {exc}"}
    return {"index": index, "outputs": outputs, "sha256": sha256, "result": result}


@app.task(name=COMBINE_TASK, bind=True, acks_late=True)
def combine(self: Any, parts: list[dict[str, Any]], *, pipeline: str, owner: str, started: float, **fields: Any) -> dict[str, Any]:
    """The chord's callback: combine the parts' results, or fail the file with the first failed part's reason."""
    ref, split = ObjectRef.from_dict(fields), split_of(pipeline)
    s3, ledger, _ = clients()
    task_id = self.request.id
    parts = sorted(parts, key=lambda p: p["index"])
    written = [key for p in parts for key in p.get("outputs", [])]
    failed = next((p for p in parts if "error" in p), None)
    reason = None
    if failed is not None:
        reason = f"part {failed['index'] + 1} of {len(parts)} failed: {failed['error']}"
    elif split is None:
        reason = f"no split pipeline called {pipeline!r} on this worker"
    outputs: list[str] = []
    if reason is None and split is not None:
        sha256 = next((p["sha256"] for p in parts if p.get("sha256")), None)
        folder = settings.topology.output_folder(pipeline, ref.key)
        with tempfile.TemporaryDirectory(prefix="dropq-combine-") as scratch:
            out_dir = Path(scratch)
            job = Job(ref=ref, source=out_dir / "input", sha256=sha256 or "", out_dir=out_dir, output_folder=folder)
            try:
                split.combine(job, [p["result"] for p in parts])
                outputs = upload_folder(s3, ref.bucket, out_dir, folder)
            except TransientError as exc:
                if self.request.retries < settings.max_retries:
                    raise self.retry(exc=exc, countdown=backoff(self.request.retries), max_retries=settings.max_retries) from exc
                reason = f"gave up after {self.request.retries + 1} attempts: {exc}"
            except (InputError, PermanentError) as exc:
                reason = str(exc)
            except Exception as exc:
                logger.exception("combining the parts of %s failed", ref.uri)
                reason = f"internal error in the {pipeline} pipeline: {type(exc).__name__}: {exc}"
    duration_ms = int((time.time() - started) * 1000)
    everything = sorted(written + outputs)
    if reason is not None:
        delete_keys(s3, ref.bucket, everything)
    with ledger_writes(task_id):
        if reason is None:
            recorded = ledger.mark_succeeded(ref, owner, everything, duration_ms, sha256, version=VERSIONS.get(pipeline, 1))
        else:
            recorded = ledger.mark_failed(ref, owner, reason, pipeline)
    if not recorded:
        return superseded(ref, task_id, pipeline)
    if reason is not None:
        return outcomes.failed(ref, pipeline, task_id, reason, duration_ms, s3, ledger, parts=len(parts))
    return outcomes.succeeded(ref, pipeline, task_id, everything, duration_ms, s3, ledger, parts=len(parts))

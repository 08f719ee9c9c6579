"""What follows a file's outcome once the ledger recorded it, the same for a file done in one task (tasks/process.py)
and for one done in parts (tasks/parts.py): its outcome line (which is also its metrics), its tally, and its webhook."""

from __future__ import annotations

from typing import Any

from dropq.ledger import FAILED, SUCCEEDED, Ledger
from dropq.objects import ObjectRef
from dropq.observe import log_outcome
from tasks.notify import notify
from tasks.services import events, service
from tasks.tally import record


def _told(ref: ObjectRef, outcome: dict[str, Any], duration_ms: int, s3: Any, ledger: Ledger, **logged: Any) -> None:
    succeeded = outcome["state"] == SUCCEEDED
    pipeline, task_id = outcome["pipeline"], outcome["task_id"]
    log_outcome(events, service, ref, task_id, pipeline, succeeded=succeeded, duration_ms=duration_ms, **logged)
    record(pipeline, succeeded=succeeded, duration_ms=duration_ms)
    notify(ref, outcome, s3, ledger)


def failed(
    ref: ObjectRef, pipeline: str, task_id: str, reason: str, duration_ms: int, s3: Any, ledger: Ledger, **logged: Any
) -> dict[str, Any]:
    """Tell that the file failed for `reason` (the ledger says so already); the task's result."""
    outcome = {"state": FAILED, "pipeline": pipeline, "reason": reason, "task_id": task_id}
    _told(ref, outcome, duration_ms, s3, ledger, reason=reason, **logged)
    return {"state": FAILED, "key": ref.key, "reason": reason}


def succeeded(
    ref: ObjectRef, pipeline: str, task_id: str, outputs: list[str], duration_ms: int, s3: Any, ledger: Ledger, **logged: Any
) -> dict[str, Any]:
    """Tell that the file succeeded with `outputs` (the ledger says so already); the task's result."""
    outcome = {"state": SUCCEEDED, "pipeline": pipeline, "outputs": outputs, "duration_ms": duration_ms, "task_id": task_id}
    _told(ref, outcome, duration_ms, s3, ledger, outputs=len(outputs), **logged)
    return {"state": SUCCEEDED, "key": ref.key, "outputs": outputs}

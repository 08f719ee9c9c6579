"""A no-op task on dropq's own Celery app, for measuring what the worker costs per task (DROPQ_PIPELINE_MODULES=bench.workloads)."""

from __future__ import annotations

from tasks.app import app

NOOP_TASK = "bench.noop"


@app.task(name=NOOP_TASK, ignore_result=True)
def noop() -> None:
    """Do nothing: what remains is the worker's own cost (no result stored: the naive app has no backend)."""

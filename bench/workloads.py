"""What the benchmarks run in dropq's own workers (DROPQ_PIPELINE_MODULES=bench.workloads): a no-op task, for what the
worker costs per task, a short sleep, for what a busy worker's stop waits for, and a `wait` pipeline, a file that takes
as many seconds as it says (a long file's bookkeeping)."""

from __future__ import annotations

import time

from dropq.errors import InputError
from tasks.app import app
from tasks.pipelines import pipeline
from tasks.pipelines.base import Job

NOOP_TASK = "bench.noop"
SLEEP_TASK = "bench.sleep"


@app.task(name=NOOP_TASK, ignore_result=True)
def noop() -> None:
    """Do nothing: what remains is the worker's own cost (no result stored: the naive app has no backend)."""


@app.task(name=SLEEP_TASK, ignore_result=True)
def sleep(seconds: float = 0.5) -> None:
    """Take `seconds` and no CPU: a short task a stopping worker must finish."""
    time.sleep(seconds)


@pipeline("wait")
def wait(job: Job) -> None:
    """Wait as many seconds as the input says, using no CPU; write waited.txt."""
    try:
        seconds = float(job.source.read_text())
    except ValueError as exc:
        raise InputError("a wait job's input must be a number of seconds") from exc
    time.sleep(seconds)
    (job.out_dir / "waited.txt").write_text(f"{seconds}\n")

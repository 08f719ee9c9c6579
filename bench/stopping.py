"""How soon things stop: SIGTERM to exit for a worker that is idle (dropq's, and Celery's as the tutorials set it up)
and for one busy with short tasks, and `dropq up` from Ctrl-C to its last line, idle.

An idle worker's stop is what every scale-in of an idle Fargate task pays (billed by the second) and what every local
cloud a test starts pays at its end. Measured wall-clock on this machine, each scenario `rounds` times.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.throughput import CELERY, fill, naive_command
from bench.workloads import SLEEP_TASK
from dropq.ledger import ledger_for
from dropq.settings import Settings, local_settings
from infra.local.processes import start_process, stop_process
from infra.local.server import free_port
from infra.worker import worker_arguments, worker_environment
from ops.dlq import purge
from ops.status import queue_counts

READY_SECONDS = 60
# What a stopping worker may take before the measurement gives up on it (the pool's stop timeout is longer).
STOP_SECONDS = 60
# A busy worker's tasks: each takes this long, and this many wait in its queue when it is told to stop.
SHORT_TASK_SECONDS = 0.5
BUSY_BACKLOG = 20
# The figures the issue sets (tests/… do not time them: they are judged here).
IDLE_WORKER_TARGET_SECONDS = 2.0
UP_TARGET_SECONDS = 5.0


@dataclass(frozen=True)
class Stop:
    """One scenario's stop times, in seconds, one per round."""

    scenario: str
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def worst(self) -> float:
        return max(self.seconds)


def _wait_for(log: Path, text: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while text not in (log.read_text(errors="replace") if log.exists() else ""):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start; see {log}")
        time.sleep(0.02)


def _signal_and_time(process: subprocess.Popen[bytes], sig: int) -> float:
    started = time.monotonic()
    process.send_signal(sig)
    try:
        process.wait(timeout=STOP_SECONDS)
    finally:
        stop_process(process, timeout=1)
    return time.monotonic() - started


def worker_stop(command: list[str], env: dict[str, str], log: Path, settle: float = 1.0) -> float:
    """Start a worker, let it settle into its idle long poll, SIGTERM it; seconds to its exit."""
    worker = start_process(command, log, env)
    try:
        _wait_for(log, "ready.", worker, "the worker")
        time.sleep(settle)  # its first long poll is open at the server
        return _signal_and_time(worker, signal.SIGTERM)
    finally:
        stop_process(worker, timeout=1)


def busy_worker_stop(settings: Settings, log: Path) -> float:
    """A worker of the default pool running short tasks with more in its queue, SIGTERMed; seconds to its exit."""
    sqs, url = settings.client("sqs"), settings.queue_url("default")
    pool = settings.topology.pools[0]
    env = {**os.environ, **settings.environment(), **worker_environment(pool)}
    worker = start_process([CELERY, *worker_arguments(pool, "busy@%h")], log, env)
    try:
        _wait_for(log, "ready.", worker, "the worker")
        fill(sqs, url, SLEEP_TASK, "default", BUSY_BACKLOG)
        deadline = time.monotonic() + READY_SECONDS
        while queue_counts(sqs, url)["in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(SHORT_TASK_SECONDS / 2)  # mid-task
        return _signal_and_time(worker, signal.SIGTERM)
    finally:
        stop_process(worker, timeout=1)
        purge(sqs, url)


def up_stop(log: Path) -> float:
    """`dropq up` in a fresh folder, idle after a file (its worker still up for the scale-in cooldown), then Ctrl-C
    (SIGINT); seconds until it has exited."""
    dropq = str(Path(sys.executable).with_name("dropq"))
    port = free_port()
    settings = local_settings(port=port)
    with tempfile.TemporaryDirectory(prefix="dropq-bench-up-") as folder:
        command = [dropq, "up", "--port", str(port), "--dashboard-port", str(free_port())]
        with log.open("ab") as out:
            up = subprocess.Popen(command, cwd=folder, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_for(log, "Ctrl-C stops everything", up, "dropq up")
            key = f"{settings.topology.inbox_prefix}stop.txt"
            settings.client("s3").put_object(Bucket=settings.bucket, Key=key, Body=b"one file, then idle\n")
            ledger, deadline = ledger_for(settings), time.monotonic() + READY_SECONDS
            while (ledger.get(settings.bucket, key) or {}).get("state") != "succeeded":
                if up.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dropq up did not process {key}; see {folder}/.dropq")
                time.sleep(0.1)
            time.sleep(1.0)
            return _signal_and_time(up, signal.SIGINT)
        finally:
            stop_process(up, timeout=10, sig=signal.SIGINT)


def measure(settings: Settings, logs: Path, rounds: int) -> list[Stop]:
    """Each scenario `rounds` times, against the moto server `settings` reach."""
    from bench.naive import NAIVE_QUEUE

    logs.mkdir(parents=True, exist_ok=True)
    pool = settings.topology.pools[0]
    base = {**os.environ, **settings.environment()}
    dropq_env = {**base, **worker_environment(pool)}
    naive_env = {**base, "BENCH_SQS_HOST": (settings.endpoint_url or "").removeprefix("http://")}
    settings.client("sqs").create_queue(QueueName=NAIVE_QUEUE)
    scenarios = {
        "dropq worker, idle": lambda i: worker_stop([CELERY, *worker_arguments(pool, "idle@%h")], dropq_env, logs / f"idle-{i}.log"),
        "Celery as in tutorials, idle": lambda i: worker_stop(naive_command(NAIVE_QUEUE), naive_env, logs / f"naive-{i}.log"),
        f"dropq worker, busy with {SHORT_TASK_SECONDS:g} s tasks": lambda i: busy_worker_stop(settings, logs / f"busy-{i}.log"),
        "`dropq up`, idle, Ctrl-C": lambda i: up_stop(logs / f"up-{i}.log"),
    }
    return [Stop(name, tuple(run(i) for i in range(rounds))) for name, run in scenarios.items()]


def stop_table(stops: list[Stop]) -> str:
    lines = ["| what stops | rounds | median s | worst s |", "|---|---:|---:|---:|"]
    lines += [f"| {s.scenario} | {len(s.seconds)} | {s.median:.2f} | {s.worst:.2f} |" for s in stops]
    return "\n".join(lines)

"""Celery workers of the local cloud: real `celery -A tasks worker` processes, one set per pool."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from infra.local.processes import start_process, stop_process
from infra.topology import WorkerPool

# Fargate sends SIGTERM, waits its stop timeout, then SIGKILLs; the local cloud does the same.
STOP_TIMEOUT_SECONDS = 30


def worker_command(pool: WorkerPool, index: int) -> list[str]:
    """The command line of one worker of `pool`."""
    celery = str(Path(sys.executable).with_name("celery"))
    return [
        celery,
        "-A",
        "tasks",
        "worker",
        "--queues",
        ",".join(pool.queues),
        "--concurrency",
        str(pool.concurrency),
        "--hostname",
        f"{pool.name}-{index}@%h",
        "--loglevel",
        "INFO",
        # Gossip, mingle and heartbeats need a broadcast exchange; SQS has none.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


class WorkerSet:
    """The running workers of one pool."""

    def __init__(self, pool: WorkerPool, env: Mapping[str, str], log_dir: Path) -> None:
        self.pool = pool
        self.env = dict(env)
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def scale_to(self, count: int) -> None:
        """Start or stop workers (newest first) until `count` run."""
        self.processes = [p for p in self.processes if p.poll() is None]
        while len(self.processes) < count:
            index = len(self.processes) + 1
            log = self.log_dir / f"worker-{self.pool.name}-{index}.log"
            self.processes.append(start_process(worker_command(self.pool, index), log, self.env))
        while len(self.processes) > count:
            stop_process(self.processes.pop(), timeout=STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """Warm-shut-down every worker (SIGTERM, then SIGKILL after the stop timeout)."""
        self.scale_to(0)

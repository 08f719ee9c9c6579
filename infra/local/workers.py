"""Celery workers of the local cloud: real `celery -A tasks worker` processes, one set per pool."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from infra.local.processes import start_process, stop_processes
from infra.topology import WorkerPool
from infra.worker import WORKER_ENVIRONMENT, worker_arguments


def worker_command(pool: WorkerPool, index: int) -> list[str]:
    """The command line of one local worker of `pool`."""
    return [str(Path(sys.executable).with_name("celery")), *worker_arguments(pool, f"{pool.name}-{index}@%h")]


class WorkerSet:
    """The running workers of one pool."""

    def __init__(self, pool: WorkerPool, env: Mapping[str, str], log_dir: Path) -> None:
        self.pool = pool
        self.env = {**env, **WORKER_ENVIRONMENT}
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.indexes: dict[int, int] = {}

    @property
    def running(self) -> int:
        """How many worker processes are alive."""
        self.processes = [p for p in self.processes if p.poll() is None]
        return len(self.processes)

    def scale_to(self, count: int) -> None:
        """Start or stop workers (newest first) until `count` run; stopping is Fargate's SIGTERM, stop timeout, SIGKILL."""
        while self.running < count:
            index = self._free_index()
            log = self.log_dir / f"worker-{self.pool.name}-{index}.log"
            self.processes.append(start_process(worker_command(self.pool, index), log, self.env))
            self.indexes[self.processes[-1].pid] = index
        if self.running > count:
            stopping, self.processes = self.processes[count:], self.processes[:count]
            for process in stopping:
                self.indexes.pop(process.pid, None)
            stop_processes(stopping, timeout=self.pool.stop_timeout)

    def _free_index(self) -> int:
        """The lowest worker number not in use, so that hostnames stay unique among live workers."""
        used = {self.indexes.get(p.pid) for p in self.processes}
        return next(i for i in range(1, len(used) + 2) if i not in used)

    def stop(self) -> None:
        """Warm-shut-down every worker (SIGTERM, then SIGKILL after the stop timeout)."""
        self.scale_to(0)

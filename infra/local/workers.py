"""Celery workers of the local cloud: real `celery -A tasks worker` processes, one set per pool."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from dropq.topology import WorkerPool
from infra.local.processes import start_process, stop_processes
from infra.worker import worker_arguments, worker_environment


def worker_command(pool: WorkerPool, index: int) -> list[str]:
    """The command line of one local worker of `pool`."""
    return [str(Path(sys.executable).with_name("celery")), *worker_arguments(pool, f"{pool.name}-{index}@%h")]


class WorkerSet:
    """The running workers of one pool."""

    def __init__(self, pool: WorkerPool, env: Mapping[str, str], log_dir: Path, on_scale: Callable[[int], None] | None = None) -> None:
        """`on_scale` is told each new worker count before the workers start or stop (the local cloud records it in ECS)."""
        self.pool = pool
        self.on_scale = on_scale
        self.env = {**env, **worker_environment(pool)}
        self.log_dir = log_dir
        # Worker number -> process; the number names the worker's hostname and log, unique among live workers.
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def running(self) -> int:
        """How many worker processes are alive."""
        self.processes = {i: p for i, p in self.processes.items() if p.poll() is None}
        return len(self.processes)

    def scale_to(self, count: int, record: bool = True) -> None:
        """Start or stop workers (highest numbers first) until `count` run; stopping is Fargate's SIGTERM, stop timeout, SIGKILL.
        `record` tells `on_scale` the new count."""
        if record and self.on_scale is not None:
            self.on_scale(count)
        while self.running < count:
            index = next(i for i in range(1, count + 1) if i not in self.processes)
            log = self.log_dir / f"worker-{self.pool.name}-{index}.log"
            self.processes[index] = start_process(worker_command(self.pool, index), log, self.env)
        if self.running > count:
            stopping = [self.processes.pop(i) for i in sorted(self.processes)[count:]]
            stop_processes(stopping, timeout=self.pool.stop_timeout)

    def stop(self) -> None:
        """Warm-shut-down every worker (SIGTERM, then SIGKILL after the stop timeout), as the cloud stops: no count is
        recorded for a service that goes with it."""
        self.scale_to(0, record=False)

"""Drain a backlog of no-op task messages three ways, against one moto server, counting SQS requests at the server.

- `naive`: Celery with default SQS settings (bench/naive.py), one solo worker;
- `dropq`: dropq's worker (tasks/, its transport and keeper) running the same no-op, one solo worker;
- `boto3`: a bare loop of ReceiveMessage (10, long poll) and DeleteMessageBatch, no Celery.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dropq.protocol import build_task_message
from dropq.queues import queue_counts
from dropq.settings import Settings
from dropq.topology import SQS_MAX_BATCH, WorkerPool
from infra.local.processes import start_process, stop_process
from infra.local.server import MotoServer, recorded_actions
from infra.worker import worker_arguments, worker_environment

READY_SECONDS = 60
BOTO3_QUEUE = "bench-boto3"
POLL_SECONDS = 0.05
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Drain:
    """What draining one backlog cost."""

    consumer: str
    tasks: int
    seconds: float
    cpu_ms: float
    requests: Counter[str]

    @property
    def tasks_per_second(self) -> float:
        return self.tasks / self.seconds

    @property
    def cpu_ms_per_task(self) -> float:
        return self.cpu_ms / self.tasks

    @property
    def requests_per_task(self) -> float:
        return sum(self.requests.values()) / self.tasks


def fill(sqs: Any, url: str, task: str, queue: str, count: int) -> None:
    """Put `count` task messages on a queue, as Celery clients would."""
    for start in range(0, count, SQS_MAX_BATCH):
        entries = [{"Id": str(i), "MessageBody": build_task_message(task, queue, {})[1]} for i in range(min(SQS_MAX_BATCH, count - start))]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def cpu_ms(pid: int) -> float:
    """User plus system CPU of a process and its reaped children, in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) * 1000 / CLOCK_TICKS


def _sqs_requests(server: MotoServer, own_polls: int) -> Counter[str]:
    assert server.record_to is not None
    counts = Counter({action: n for (service, action), n in recorded_actions(server.record_to).items() if service == "sqs"})
    counts["GetQueueAttributes"] -= own_polls
    return +counts


def _drained(sqs: Any, url: str) -> bool:
    counts = queue_counts(sqs, url)
    return counts["visible"] + counts["in_flight"] + counts["delayed"] == 0


@contextmanager
def running_worker(name: str, command: list[str], env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A `celery worker` process, once it says it is ready; stopped (SIGTERM) after."""
    worker = start_process(command, log, env)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while "ready." not in (log.read_text(errors="replace") if log.exists() else ""):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} worker did not start; see {log}")
            time.sleep(0.01)
        yield worker
    finally:
        stop_process(worker, timeout=60)


def drain_with_worker(
    name: str, server: MotoServer, sqs: Any, url: str, command: list[str], env: dict[str, str], tasks: int, log: Path
) -> Drain:
    """Start a `celery worker` on a full queue; time it from ready to empty."""
    server.reset_recording()
    with running_worker(name, command, env, log) as worker:
        started, cpu_before = time.monotonic(), cpu_ms(worker.pid)
        polls = 0
        while not _drained(sqs, url):
            polls += 1
            time.sleep(POLL_SECONDS)
        seconds, cpu = time.monotonic() - started, cpu_ms(worker.pid) - cpu_before
        polls += 1
    return Drain(name, tasks, seconds, cpu, _sqs_requests(server, polls))


def drain_with_boto3(server: MotoServer, sqs: Any, url: str, tasks: int) -> Drain:
    """A bare consumer: receive 10 with long polling, delete them in one batch, until `tasks` are done."""
    server.reset_recording()
    started, cpu_before = time.monotonic(), time.process_time()
    done = 0
    while done < tasks:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=SQS_MAX_BATCH, WaitTimeSeconds=1).get("Messages", [])
        if messages:
            sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            )
            done += len(messages)
    return Drain("boto3", tasks, time.monotonic() - started, (time.process_time() - cpu_before) * 1000, _sqs_requests(server, 0))


CELERY = str(Path(sys.executable).with_name("celery"))


def naive_command(queue: str) -> list[str]:
    """The tutorials' worker, solo (one process, no pool): what it costs per task is the worker's own overhead."""
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]  # as dropq's: SQS has no broadcast
    return [CELERY, "-A", "bench.naive", "worker", "--pool", "solo", "--queues", queue, "--loglevel", "INFO", *quiet]


def dropq_command(pool: WorkerPool) -> list[str]:
    """A worker of `pool` as dropq starts it (infra/worker.py), solo like the naive one."""
    return [CELERY, *worker_arguments(replace(pool, concurrency=1), "bench@%h"), "--pool", "solo"]


def median(drains: list[Drain]) -> Drain:
    """The drain with the median rate among repeats of one measurement (its CPU and requests come with it)."""
    return sorted(drains, key=lambda d: d.tasks_per_second)[len(drains) // 2]


def compare(settings: Settings, server: MotoServer, backlog: int, logs: Path, rounds: int = 1) -> list[Drain]:
    """Drain `backlog` no-op tasks with each consumer in turn, `rounds` times; the median of each."""
    runs = [_compare_once(settings, server, backlog, logs / f"round-{i}") for i in range(rounds)]
    return [median([run[c] for run in runs]) for c in range(len(runs[0]))]


def _compare_once(settings: Settings, server: MotoServer, backlog: int, logs: Path) -> list[Drain]:
    from bench.naive import NAIVE_QUEUE
    from bench.naive import NOOP_TASK as NAIVE_NOOP
    from bench.workloads import NOOP_TASK

    sqs = settings.client("sqs")
    base_env = {**os.environ, **settings.environment()}
    host = (settings.endpoint_url or "").removeprefix("http://")
    naive_url = sqs.create_queue(QueueName=NAIVE_QUEUE)["QueueUrl"]
    # Each consumer drains its own queue: a stopped worker's last long poll can still take messages put on it.
    dropq_url = settings.queue_url("default")
    results = []

    fill(sqs, naive_url, NAIVE_NOOP, NAIVE_QUEUE, backlog)
    naive_env = {**base_env, "BENCH_SQS_HOST": host}
    results.append(
        drain_with_worker(
            "naive Celery",
            server,
            sqs,
            naive_url,
            naive_command(NAIVE_QUEUE),
            naive_env,
            backlog,
            logs / f"naive-{backlog}.log",
        )
    )

    fill(sqs, dropq_url, NOOP_TASK, "default", backlog)
    pool = settings.topology.pools[0]
    dropq_env = {**base_env, **worker_environment(pool)}
    results.append(
        drain_with_worker("dropq", server, sqs, dropq_url, dropq_command(pool), dropq_env, backlog, logs / f"dropq-{backlog}.log")
    )

    boto3_url = sqs.create_queue(QueueName=BOTO3_QUEUE)["QueueUrl"]
    fill(sqs, boto3_url, NOOP_TASK, BOTO3_QUEUE, backlog)
    results.append(drain_with_boto3(server, sqs, boto3_url, backlog))
    return results


@dataclass(frozen=True)
class Idle:
    """Requests a worker makes on an empty queue, and after its pool scaled to zero, over `seconds` each."""

    seconds: float
    busy: Counter[tuple[str, str]]
    scaled_to_zero: Counter[tuple[str, str]]

    def per_hour(self, requests: Counter[tuple[str, str]], service: str) -> float:
        return sum(n for (s, _), n in requests.items() if s == service) * 3600 / self.seconds


def idle(settings: Settings, server: MotoServer, seconds: float, logs: Path) -> Idle:
    """One worker of the first pool, as deployed, idle on its empty queues; then none."""
    assert server.record_to is not None
    pool = settings.topology.pools[0]
    log = logs / "idle.log"
    env = {**os.environ, **settings.environment(), **worker_environment(pool)}
    with running_worker("idle", [CELERY, *worker_arguments(pool, "idle@%h")], env, log):
        server.reset_recording()
        time.sleep(seconds)
        busy = recorded_actions(server.record_to)
    server.reset_recording()
    time.sleep(seconds)
    return Idle(seconds, busy, recorded_actions(server.record_to))

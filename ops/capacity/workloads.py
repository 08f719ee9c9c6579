"""What a plan is given: what one file costs (`Workload`, `WORKLOADS`, the measured inputs), the arrivals, the account."""

from __future__ import annotations

from dataclasses import dataclass

from dropq.topology import SQS_MAX_WAIT_SECONDS, WorkerPool
from infra import prices, quotas
from ops.capacity.units import duration, number

# --- measured inputs ---------------------------------------------------------------------------------------------
# A task's cost in a worker's main process (a no-op task: receive, decode, run, acknowledge), at a backlog of 1000:
# BENCHMARKS.md, "Draining a backlog of no-op tasks" (make bench, 2026-12-01: 0.48 ms).
DROPQ_OVERHEAD_CPU_SECONDS = 0.00048
# The producer's seconds per invocation of a batch of 10 notifications (what the inbox events queue brings under load):
# BENCHMARKS.md, "Producer", measured in process against moto when it still made ten ledger writes a batch (30 to 60
# records/s, so 0.17 to 0.33 s a batch); it makes none now, so this is on the side of caution. The stack gives it 256
# MiB on arm64 (infra/cloud/producer.py, MEMORY_MIB and ARCHITECTURE).
PRODUCER_SECONDS = 0.25
PRODUCER_MEMORY_GB = 256 / 1024
# SQS requests per task of a loaded worker (receives of 10, deletes of 10): BENCHMARKS.md, "Cost model" (0.20).
WORKER_SQS_REQUESTS = 0.2
# An idle worker long-polls each of its queues, 20 s at a time (modelled: 180 an hour a queue, as the README says;
# BENCHMARKS.md's cost model measured 120), and writes its heartbeat to the ledger (measured: 240 an hour).
IDLE_SQS_REQUESTS_PER_HOUR = 3600 / SQS_MAX_WAIT_SECONDS
HEARTBEAT_WRITES_PER_HOUR = 240
# The stack runs workers on x86_64 (infra/cloud/workers.py), on Fargate Spot when the pool says `spot`.
WORKER_PRICE = prices.FARGATE_X86

MEASURED = "measured"
# How a workload marks its figures that are not measured yet (BENCHMARKS.md's section marks their rows).
PLACEHOLDER = "placeholder"
# The burst: what `dropq plan` plans unless told otherwise.
DEFAULT_BURST = 10_000_000


@dataclass(frozen=True)
class Workload:
    """What one file costs: worker CPU seconds (dropq's overhead included), wall seconds, and its requests to AWS.

    `wall_seconds` is for a file that is not CPU bound (one that waits on something else); None: its CPU seconds.
    Ledger writes are write units on the ledger table and on its busiest index (`recent`), all made by the worker (a
    file's claim creates its entry); `hot_key_share` is the share of that index's writes on its hottest partition key
    value (1/64 when the 64 shards share them evenly).
    """

    name: str
    cpu_seconds: float
    wall_seconds: float | None = None
    s3_puts: float = 1.0
    s3_gets: float = 1.0
    sqs_requests: float = WORKER_SQS_REQUESTS
    # The claim and the outcome on the table; the claim's entry in `recent`, the only index write of a file that succeeds.
    table_writes: float = 2.0
    index_writes: float = 1.0
    # Writes to every index of the ledger (billed as write units): `recent` once.
    billed_index_writes: float = 1.0
    hot_key_share: float = 1 / 64
    source: str = ""

    def __post_init__(self) -> None:
        if not self.cpu_seconds > 0:
            raise ValueError(f"workload {self.name}: cpu_seconds {self.cpu_seconds} must be positive")
        if self.wall_seconds is not None and not self.wall_seconds > 0:
            raise ValueError(f"workload {self.name}: wall_seconds {self.wall_seconds} must be positive, or None for the CPU seconds")
        for name in ("s3_puts", "s3_gets", "sqs_requests", "table_writes", "index_writes", "billed_index_writes"):
            if getattr(self, name) < 0:
                raise ValueError(f"workload {self.name}: {name} {getattr(self, name)} must be at least 0")
        if not 0 < self.hot_key_share <= 1:
            raise ValueError(f"workload {self.name}: hot_key_share {self.hot_key_share} is outside 0..1")

    @property
    def wall(self) -> float:
        """Seconds one file occupies a worker process."""
        return self.wall_seconds if self.wall_seconds is not None else self.cpu_seconds

    def per_task(self, pool: WorkerPool) -> float:
        """Files per second one task of `pool` finishes: bound by its vCPUs, or by its processes when files wait."""
        return min(pool.cpu / 1024 / self.cpu_seconds, pool.concurrency / self.wall)


def _placeholder(what: str) -> str:
    return f"{PLACEHOLDER}: {what}, until the benchmark measures it"


# The figures of each workload, in one place: the benchmark replaces the placeholders as it measures them.
WORKLOADS = {
    "images-small": Workload(
        "images-small",
        cpu_seconds=0.0208 + DROPQ_OVERHEAD_CPU_SECONDS,
        s3_puts=3,
        source=f"{MEASURED}: make bench, 2026-12-01, partition load (a 96x64 JPEG: 20.8 ms of pool-process CPU per file)",
    ),
    "images-12mp": Workload(
        "images-12mp",
        cpu_seconds=0.229,
        s3_puts=3,
        source=f"{MEASURED}: make bench, 2026-12-01, pipeline efficiency (4000x3000 photos: 229 ms of worker CPU per file)",
    ),
    "tables-100k": Workload(
        "tables-100k",
        cpu_seconds=0.121,
        s3_puts=2,
        source=f"{MEASURED}: make bench, 2026-12-01, pipeline efficiency (CSV of 100,000 rows: 121 ms of worker CPU per file)",
    ),
    "metadata": Workload(
        "metadata",
        cpu_seconds=0.0122 + DROPQ_OVERHEAD_CPU_SECONDS,
        s3_puts=1,
        source=f"{MEASURED}: make bench, 2026-12-01, partition load (a small text file: 12.2 ms of pool-process CPU per file)",
    ),
    "wait-60s": Workload(
        "wait-60s",
        cpu_seconds=0.0370 + DROPQ_OVERHEAD_CPU_SECONDS,
        wall_seconds=60,
        s3_puts=1,
        table_writes=9.0,
        source=f"{MEASURED}: make bench, 2026-12-01, partition load (a file that waits 60 s: 37 ms of CPU, 10 ledger writes then, "
        "9 since the producer writes none)",
    ),
}


@dataclass(frozen=True)
class Arrivals:
    """Files dropped in the inbox: `files` at once (a burst, `seconds` 0), or evenly over `seconds`."""

    files: int
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.files < 1:
            raise ValueError(f"arrivals: {self.files} files; at least 1")
        if self.seconds < 0:
            raise ValueError(f"arrivals: over {self.seconds} s; at least 0")

    @classmethod
    def burst(cls, files: int) -> Arrivals:
        """`files` dropped at once."""
        return cls(files=files)

    @classmethod
    def steady(cls, rate: float, seconds: float) -> Arrivals:
        """`rate` files a second for `seconds`."""
        if not rate > 0 or not seconds > 0:
            raise ValueError(f"arrivals: a rate of {rate} files/s for {seconds} s; both must be positive")
        return cls(files=max(1, round(rate * seconds)), seconds=seconds)

    @property
    def rate(self) -> float | None:
        """Files a second while they arrive; None for a burst."""
        return self.files / self.seconds if self.seconds else None

    def describe(self) -> str:
        """In words: 'a burst of 10,000,000 files' or '500 files/s for 2 h'."""
        if self.rate is None:
            return f"a burst of {self.files:,} files"
        return f"{number(self.rate)} files/s for {duration(self.seconds)} ({self.files:,} files)"


@dataclass(frozen=True)
class Account:
    """What the plan assumes of the AWS account and the bucket beyond the topology; defaults from infra/quotas.py."""

    vcpu_quota: int = quotas.FARGATE_VCPU_QUOTA
    lambda_concurrency: int = quotas.LAMBDA_ACCOUNT_CONCURRENCY
    task_start_seconds: float = quotas.FARGATE_TASK_START_SECONDS
    # Partitioned prefixes S3 already has for the outputs; it adds more by itself, gradually (not modelled).
    s3_prefixes: int = 1

    def __post_init__(self) -> None:
        for name in ("vcpu_quota", "lambda_concurrency", "s3_prefixes"):
            if getattr(self, name) < 1:
                raise ValueError(f"account: {name} {getattr(self, name)} must be at least 1")
        if self.task_start_seconds < 0:
            raise ValueError(f"account: task_start_seconds {self.task_start_seconds} must be at least 0")

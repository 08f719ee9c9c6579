"""A capacity plan: how a deployment takes a burst of files, or a steady rate, through AWS's delays and limits.

A pure simulation (no AWS call) of the path a file takes: S3 events -> the inbox events queue -> the producer Lambda
(batches of the queue's messages, its concurrency) -> the pool's SQS queue (retention, in-flight limit) -> scaling (a
CloudWatch datapoint a minute, the alarms, infra/scaling.py's decision with its cooldowns) -> ECS (desired count,
launch rates, start time, vCPU quota) -> workers (CPU or wall time per file) -> the ledger in DynamoDB (warm
throughput, on-demand's ramp, hot keys) and S3 (requests per partitioned prefix). It steps a second at a time while
anything changes, a minute at most while nothing does, so that a burst of 10 million files takes well under a second of CPU.

What is measured and what is modelled:

- measured (inputs): what one file costs, `Workload` (worker CPU seconds including dropq's own overhead, wall seconds,
  requests per file), and the producer's seconds per invocation; `WORKLOADS` says for each figure where it was
  measured (BENCHMARKS.md) or that it is a placeholder until the benchmark measures it;
- deployed: the topology (pools, queues and their retention, `Capacity`) and the scaling policy, infra/scaling.py,
  the very code the local autoscaler runs;
- modelled: AWS's quotas and behaviour, infra/quotas.py (each figure beside its source, with its status: published,
  archived, observed, assumed, or the account's), and list prices, infra/prices.py.

Simplifications, each on the side of caution unless said otherwise: files flow as fluid counts; SQS delivers the
oldest message first (a standard queue only roughly does, so a real oldest message may be older); a datapoint is
read as soon as its minute ends (AWS's arrive a little later, and up to 15 minutes late for a queue idle 6 hours,
which the plan does not model); target tracking asks ceil(backlog / target) as the
policy does (AWS's own arithmetic, capacity x metric / target, over-asks while tasks are starting); a scale-in waits
for the alarm's 15 datapoints and then for the policy's scale-in cooldown of a low backlog (AWS would not wait the
second time: the plan's idle tail, and its cost, are up to 5 minutes long); an idle task stops at once; a throttled
request is retried and slows its stage, so nothing fails: no file is dead-lettered (a message reaches the DLQ only
after maxReceiveCount failed receives, which no modelled limit causes) and files are lost only by expiring, past the
retention of the pool's queue or of the inbox events queue. One pool is planned: other pools' tasks share the vCPU quota.

The package, a module per concept, each importing only those before it in this list (report names `Plan` for type
checking alone): units (durations and counts in words), workloads (what a plan is given), limits (the limits a plan
can meet, and the ceiling they set), report (one plan in text or Markdown), results (what a plan finds: `Plan` and its
parts), simulation (`plan()`), benchmarks (BENCHMARKS.md's section). Import from the package: its names are the API.
"""

from __future__ import annotations

from ops.capacity.benchmarks import benchmarks_section
from ops.capacity.limits import (
    ACCOUNT_LAUNCHES,
    ECS,
    HOT_KEY,
    INDEX_WRITES,
    LAMBDA_ACCOUNT,
    LAMBDA_EVENT_AGE,
    LAMBDA_RESERVED,
    LAMBDA_SCALING,
    LEDGER,
    MAX_WORKERS,
    PRODUCER,
    QUEUE,
    S3_GETS,
    S3_PUTS,
    SERVICE_LAUNCHES,
    SQS_IN_FLIGHT,
    SQS_RETENTION,
    STORAGE,
    TABLE_WRITES,
    TASKS_PER_SERVICE,
    VCPU_QUOTA,
    WORKERS,
    LimitHit,
    capacity,
)
from ops.capacity.results import Cost, Plan, Sample, ScaleEvent
from ops.capacity.simulation import default_pool, plan
from ops.capacity.units import duration, number, parse_duration
from ops.capacity.workloads import (
    DEFAULT_BURST,
    DROPQ_OVERHEAD_CPU_SECONDS,
    HEARTBEAT_WRITES_PER_HOUR,
    IDLE_SQS_REQUESTS_PER_HOUR,
    MEASURED,
    PLACEHOLDER,
    PRODUCER_MEMORY_GB,
    PRODUCER_SECONDS,
    WORKER_PRICE,
    WORKER_SQS_REQUESTS,
    WORKLOADS,
    Account,
    Arrivals,
    Workload,
)

__all__ = [
    "ACCOUNT_LAUNCHES",
    "DEFAULT_BURST",
    "DROPQ_OVERHEAD_CPU_SECONDS",
    "ECS",
    "HEARTBEAT_WRITES_PER_HOUR",
    "HOT_KEY",
    "IDLE_SQS_REQUESTS_PER_HOUR",
    "INDEX_WRITES",
    "LAMBDA_ACCOUNT",
    "LAMBDA_EVENT_AGE",
    "LAMBDA_RESERVED",
    "LAMBDA_SCALING",
    "LEDGER",
    "MAX_WORKERS",
    "MEASURED",
    "PLACEHOLDER",
    "PRODUCER",
    "PRODUCER_MEMORY_GB",
    "PRODUCER_SECONDS",
    "QUEUE",
    "S3_GETS",
    "S3_PUTS",
    "SERVICE_LAUNCHES",
    "SQS_IN_FLIGHT",
    "SQS_RETENTION",
    "STORAGE",
    "TABLE_WRITES",
    "TASKS_PER_SERVICE",
    "VCPU_QUOTA",
    "WORKERS",
    "WORKER_PRICE",
    "WORKER_SQS_REQUESTS",
    "WORKLOADS",
    "Account",
    "Arrivals",
    "Cost",
    "LimitHit",
    "Plan",
    "Sample",
    "ScaleEvent",
    "Workload",
    "benchmarks_section",
    "capacity",
    "default_pool",
    "duration",
    "number",
    "parse_duration",
    "plan",
]

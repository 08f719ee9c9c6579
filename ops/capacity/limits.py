"""The limits a plan can meet: their names and stages, what one did to a plan, their tally, and the ceiling they set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dropq.topology import DYNAMODB_PARTITION_WRITES, DYNAMODB_TABLE_MAX_UNITS, Topology, WorkerPool
from infra import quotas
from ops.capacity.units import duration, number
from ops.capacity.workloads import Account, Workload

# The limits a plan can meet, by the stage they hold back.
PRODUCER, QUEUE, ECS, WORKERS, LEDGER, STORAGE = "producer", "queue", "ECS", "workers", "ledger", "S3"
LAMBDA_RESERVED = "Lambda reserved concurrency"
LAMBDA_ACCOUNT = "Lambda account concurrency"
LAMBDA_SCALING = "Lambda scaling rate"
LAMBDA_EVENT_AGE = "inbox events retention"
SQS_IN_FLIGHT = "SQS in-flight messages"
SQS_RETENTION = "SQS retention"
MAX_WORKERS = "max_workers"
TASKS_PER_SERVICE = "ECS tasks per service"
VCPU_QUOTA = "Fargate vCPU quota"
SERVICE_LAUNCHES = "ECS service launch rate"
ACCOUNT_LAUNCHES = "Fargate account launch rate"
TABLE_WRITES = "DynamoDB table writes"
INDEX_WRITES = "DynamoDB index writes"
HOT_KEY = "DynamoDB hot index key"
S3_PUTS = "S3 PUTs per prefix"
S3_GETS = "S3 GETs per prefix"


@dataclass(frozen=True)
class LimitHit:
    """A limit the plan met: when demand first passed it, how long it held its stage back, and how far it was asked."""

    name: str
    stage: str
    unit: str
    # The limit when first passed (a DynamoDB table's grows), and the most asked of it.
    bound: float
    wanted: float
    first_at: float
    # When it first was the tightest limit of a stage, and for how long it was, in all; None and 0 if never.
    binding_at: float | None
    binding_seconds: float
    # The stage it held back first (producer or workers; its own stage if never) and the files a second that ran at.
    held: str
    capped_rate: float

    def describe(self) -> str:
        """One line: what it is, when it bit, what it capped."""
        when = duration(self.binding_at if self.binding_at is not None else self.first_at)
        held = f"held the {self.held} at {number(self.capped_rate)} files/s" if self.capped_rate > 0 else f"held the {self.held} back"
        return f"{self.name} at {when}: {number(self.wanted)} {self.unit} wanted, {number(self.bound)} allowed; {held}"


class Hits:
    """The limits met so far, each with its first passing, its binding time and the most asked of it."""

    def __init__(self) -> None:
        self.hits: dict[str, dict[str, Any]] = {}

    def touch(self, name: str, stage: str, unit: str, now: float, wanted: float, bound: float, rate: float) -> None:
        hit = self.hits.get(name)
        if hit is None:
            self.hits[name] = {
                "name": name,
                "stage": stage,
                "unit": unit,
                "bound": bound,
                "wanted": wanted,
                "first_at": now,
                "binding_at": None,
                "binding_seconds": 0.0,
                "held": stage,
                "capped_rate": rate,
            }
        else:
            hit["wanted"] = max(hit["wanted"], wanted)

    def bind(self, name: str, now: float, dt: float, stage: str, rate: float) -> None:
        hit = self.hits[name]
        if hit["binding_at"] is None:
            hit["binding_at"], hit["held"], hit["capped_rate"] = now, stage, rate
        hit["binding_seconds"] += dt

    def result(self) -> tuple[LimitHit, ...]:
        return tuple(sorted((LimitHit(**hit) for hit in self.hits.values()), key=lambda hit: hit.first_at))


def capacity(
    topology: Topology, pool: WorkerPool, workload: Workload, account: Account, producer_seconds: float, files_per_invocation: int
) -> tuple[float, str]:
    """The most files a second the deployment serves once everything has scaled, and the limit that sets it."""
    reserved = topology.capacity.producer_reserved_concurrency
    concurrency = min(account.lambda_concurrency, reserved or account.lambda_concurrency)
    vcpus = pool.cpu / 1024
    tasks = {MAX_WORKERS: pool.max_workers, TASKS_PER_SERVICE: quotas.ECS_TASKS_PER_SERVICE, VCPU_QUOTA: int(account.vcpu_quota // vcpus)}
    task_limit = min(tasks, key=lambda name: tasks[name])
    hold = pool.concurrency + pool.prefetch
    per_task = workload.per_task(pool)
    candidates = {
        (LAMBDA_RESERVED if reserved and reserved <= account.lambda_concurrency else LAMBDA_ACCOUNT): concurrency
        * files_per_invocation
        / producer_seconds,
        task_limit: tasks[task_limit] * per_task,
        SQS_IN_FLIGHT: quotas.SQS_MAX_IN_FLIGHT / hold * per_task,
    }
    if workload.table_writes:
        candidates[TABLE_WRITES] = DYNAMODB_TABLE_MAX_UNITS / workload.table_writes
    if workload.index_writes:
        candidates[INDEX_WRITES] = DYNAMODB_TABLE_MAX_UNITS / workload.index_writes
        candidates[HOT_KEY] = DYNAMODB_PARTITION_WRITES / (workload.index_writes * workload.hot_key_share)
    if workload.s3_puts:
        candidates[S3_PUTS] = account.s3_prefixes * quotas.S3_PREFIX_PUTS / workload.s3_puts
    if workload.s3_gets:
        candidates[S3_GETS] = account.s3_prefixes * quotas.S3_PREFIX_GETS / workload.s3_gets
    name = min(candidates, key=lambda limit: candidates[limit])
    return candidates[name], name

"""What a plan finds: the deployment minute by minute, its scaling, its cost, and the `Plan` that holds them all."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dropq.topology import WorkerPool
from infra import prices, quotas
from infra.scaling import ScalingPolicy
from ops.capacity import report
from ops.capacity.limits import LimitHit
from ops.capacity.units import duration, number
from ops.capacity.workloads import Account, Arrivals, Workload


@dataclass(frozen=True)
class Sample:
    """The deployment at the end of one CloudWatch minute."""

    at: float
    arrived: float
    producer_waiting: float
    backlog: float
    in_flight: float
    done: float
    expired: float
    desired: int
    running: int
    starting: int
    # Seconds the oldest message has waited in SQS, and the oldest event in the inbox events queue.
    oldest_message: float
    oldest_event: float


@dataclass(frozen=True)
class ScaleEvent:
    """A change of the desired count: when, which policy (wake, scale-out, scale-in), to how many, at what backlog."""

    at: float
    action: str
    workers: int
    backlog: int


@dataclass(frozen=True)
class Cost:
    """What the plan costs at infra/prices.py's list prices (no free tier), by service, in USD, with the quantities."""

    task_hours: float
    fargate: float
    sqs_requests: float
    sqs: float
    write_units: float
    dynamodb: float
    invocations: float
    lambda_gb_seconds: float
    lambda_: float
    s3_puts: float
    s3_gets: float
    s3: float

    @property
    def total(self) -> float:
        """USD in all."""
        return self.fargate + self.sqs + self.dynamodb + self.lambda_ + self.s3

    @property
    def rows(self) -> list[tuple[str, str, float]]:
        """(service, quantity, USD) per service."""
        return [
            ("Fargate", f"{number(self.task_hours)} task-hours", self.fargate),
            ("SQS", f"{number(self.sqs_requests)} requests", self.sqs),
            ("DynamoDB", f"{number(self.write_units)} write units", self.dynamodb),
            ("Lambda", f"{number(self.invocations)} invocations, {number(self.lambda_gb_seconds)} GB-s", self.lambda_),
            ("S3", f"{number(self.s3_puts)} PUTs, {number(self.s3_gets)} GETs", self.s3),
        ]


@dataclass(frozen=True)
class Plan:
    """What a deployment does with some arrivals: when it drains, how far it scales, what holds it back, what it costs."""

    profile: str
    pool: WorkerPool
    queue: str
    retention: int
    workload: Workload
    arrivals: Arrivals
    account: Account
    policy: ScalingPolicy
    # Seconds from the first drop: the last file done (None if none was), the first; the wake, the first task up.
    drained_at: float | None
    first_done_at: float | None
    woke_at: float | None
    first_running_at: float | None
    peak_tasks: int
    peak_backlog: float
    peak_age: float
    done: int
    expired: int
    expired_events: int
    dead_lettered: int
    # The most files a second the deployment serves once everything has scaled, and the limit that sets it.
    capacity: float
    capacity_limit: str
    limits: tuple[LimitHit, ...]
    scaling: tuple[ScaleEvent, ...]
    samples: tuple[Sample, ...]
    cost: Cost
    ended_at: float
    # Simulation steps taken: a second each while anything changes, up to a minute while nothing does.
    steps: int = 0

    @property
    def first_limit(self) -> LimitHit | None:
        """The limit that bit first (held its stage back first)."""
        binding = [hit for hit in self.limits if hit.binding_at is not None]
        return min(binding, key=lambda hit: hit.binding_at or 0.0) if binding else None

    @property
    def bottleneck(self) -> LimitHit | None:
        """The limit that held its stage back longest."""
        binding = [hit for hit in self.limits if hit.binding_seconds > 0]
        return max(binding, key=lambda hit: hit.binding_seconds) if binding else None

    @property
    def grows(self) -> bool:
        """Whether files arrive faster than the deployment can ever serve them: the queue grows while they do."""
        rate = self.arrivals.rate
        return rate is not None and rate > self.capacity * (1 + 1e-9)

    def limit(self, name: str) -> LimitHit | None:
        """The limit called `name`, if the plan met it."""
        return next((hit for hit in self.limits if hit.name == name), None)

    def verdict(self) -> str:
        """One or two sentences: does it keep up, does it drain inside retention."""
        lost = self.expired + self.expired_events
        if self.grows:
            rate = self.arrivals.rate or 0.0
            return (
                f"The queue grows without bound while files arrive: {number(rate)} files/s against at most "
                f"{number(self.capacity)} files/s served ({self.capacity_limit}); its oldest message ages about "
                f"{1 - self.capacity / rate:.2f} s every second."
                + (
                    f" {lost:,} files expired."
                    if lost
                    else f" Arrivals end in time: nothing expired (retention {duration(self.retention)})."
                )
            )
        if lost:
            return (
                f"{lost:,} files expired ({self.expired:,} past the queue's retention of {duration(self.retention)}, "
                f"{self.expired_events:,} past the inbox events queue's retention)."
            )
        drained = self.drained_at or 0.0
        share = drained / self.retention
        return (
            f"Drains in {duration(drained)}, {share:.1%} of the queue's retention ({duration(self.retention)}); "
            "nothing expired or dead-lettered."
        )

    def render(self) -> str:
        """A short text report: the verdict, the summary, the limits met, the queue's age over time, the cost."""
        return report.text(self)

    def markdown(self) -> str:
        """The same report in Markdown (BENCHMARKS.md's "Capacity plan")."""
        return report.markdown(self)

    def to_dict(self) -> dict[str, Any]:
        """Everything, for `dropq plan --json`."""
        first, bottleneck = self.first_limit, self.bottleneck
        return {
            "profile": self.profile,
            "pool": dataclasses.asdict(self.pool),
            "queue": self.queue,
            "retention_seconds": self.retention,
            "workload": dataclasses.asdict(self.workload),
            "arrivals": {"files": self.arrivals.files, "seconds": self.arrivals.seconds, "rate": self.arrivals.rate},
            "account": dataclasses.asdict(self.account),
            "policy": dataclasses.asdict(self.policy),
            "verdict": self.verdict(),
            "drained_at": self.drained_at,
            "first_done_at": self.first_done_at,
            "woke_at": self.woke_at,
            "first_running_at": self.first_running_at,
            "peak_tasks": self.peak_tasks,
            "peak_backlog": self.peak_backlog,
            "peak_age": self.peak_age,
            "done": self.done,
            "expired": self.expired,
            "expired_events": self.expired_events,
            "dead_lettered": self.dead_lettered,
            "capacity": self.capacity,
            "capacity_limit": self.capacity_limit,
            "grows": self.grows,
            "first_limit": first.name if first else None,
            "bottleneck": bottleneck.name if bottleneck else None,
            "limits": [dataclasses.asdict(hit) for hit in self.limits],
            "scaling": [dataclasses.asdict(event) for event in self.scaling],
            "samples": [dataclasses.asdict(sample) for sample in self.samples],
            "cost": {**dataclasses.asdict(self.cost), "total": self.cost.total},
            "prices": {"region": prices.REGION, "recorded": prices.RECORDED},
            "figures": [dataclasses.asdict(figure) for figure in quotas.FIGURES],
            "ended_at": self.ended_at,
        }

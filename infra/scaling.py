"""The one scaling policy of a worker pool: the CDK stack deploys it, the local autoscaler runs it.

The signal is the pool's backlog: messages waiting plus messages in flight, over all its queues.
Counting in-flight messages means a pool never scales to zero while a task runs, which is what the
CDK pattern `QueueProcessingFargateService` gets wrong (it scales on visible messages only).

- Wake: with no worker wanted and a backlog, start one. Backlog per task is undefined at zero
  tasks and target tracking sizes from the current capacity, so a step policy on the raw backlog
  does the first step.
- Target tracking: keep backlog per worker near `backlog_per_worker`; the new worker count is
  ceil(backlog / backlog_per_worker), clamped to the pool's min and max.
- Scale in (to the minimum, zero allowed) only once the backlog has stayed low for the scale-in cooldown.

`ScalingPolicy.decide` is that policy with its cooldowns, as a pure function of what it remembers (`ScalingState`):
the local autoscaler calls it on every reading, and the capacity plan (ops/capacity/) whenever a simulated
CloudWatch alarm fires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from dropq.topology import WorkerPool

# Application Auto Scaling cooldowns (seconds). Scale out fast, scale in slowly.
SCALE_OUT_COOLDOWN = 60
SCALE_IN_COOLDOWN = 300
# After a wake-up, how long before another: a Fargate task needs about a minute to start and report.
WAKE_COOLDOWN = 120
# CloudWatch period of the metrics the stack's policies read.
METRIC_PERIOD = 60
# Periods the stack's wake alarm evaluates (infra/cloud/workers.py): one datapoint with a backlog and nothing wanted.
WAKE_EVALUATION_PERIODS = 1

# What a decision does to the worker count.
WAKE = "wake"
SCALE_OUT = "scale-out"
SCALE_IN = "scale-in"
HOLD = "hold"

# CloudWatch metric math over the ids the stack gives its metrics: `backlog` (an expression summing
# visible and in-flight messages of the pool's queues), `running` and `desired` (the service's task counts).
# A task count with no data point (Container Insights may report none for a service at zero) counts as 0.
BACKLOG_PER_WORKER_EXPRESSION = "IF(FILL(running, 0) > 0, backlog / FILL(running, 1), backlog)"
WAKE_EXPRESSION = "IF(FILL(desired, 0) == 0 AND backlog > 0, 1, 0)"


def backlog_expression(metric_ids: list[str]) -> str:
    """CloudWatch metric math summing queue metrics, each counted as 0 while SQS reports nothing for it."""
    return " + ".join(f"FILL({metric_id}, 0)" for metric_id in metric_ids)


@dataclass(frozen=True)
class ScalingState:
    """What the policy remembers between readings: its last wake and scale-out, and since when the backlog has been low."""

    last_wake: float = -math.inf
    last_scale_out: float = -math.inf
    low_since: float | None = None


@dataclass(frozen=True)
class Decision:
    """What one reading decides: the worker count to set (`workers`), what that is, what the policy wanted, and the state after."""

    workers: int
    action: str
    wanted: int
    state: ScalingState


@dataclass(frozen=True)
class ScalingPolicy:
    """How many workers a pool wants for a backlog; the numbers the stack deploys."""

    min_workers: int
    max_workers: int
    backlog_per_worker: int
    scale_out_cooldown: float = SCALE_OUT_COOLDOWN
    scale_in_cooldown: float = SCALE_IN_COOLDOWN
    wake_cooldown: float = WAKE_COOLDOWN

    def clamp(self, workers: int) -> int:
        """`workers` within the pool's bounds."""
        return max(self.min_workers, min(self.max_workers, workers))

    def backlog_per_running_worker(self, backlog: float, running: float) -> float:
        """The tracked metric, as `BACKLOG_PER_WORKER_EXPRESSION` computes it in CloudWatch."""
        return backlog / running if running > 0 else float(backlog)

    def wants_wake(self, backlog: int, desired: int) -> bool:
        """Whether the wake policy fires, as `WAKE_EXPRESSION` decides it in CloudWatch."""
        return desired == 0 and backlog > 0

    def desired(self, backlog: int, running: int) -> int:
        """The worker count the policies ask for, given the backlog and the workers running now."""
        if running == 0:
            return self.clamp(1 if self.wants_wake(backlog, running) else 0)
        # Target tracking: capacity * metric / target, rounded up so as never to under-provision.
        metric = self.backlog_per_running_worker(backlog, running)
        return self.clamp(math.ceil(running * metric / self.backlog_per_worker))

    def decide(self, state: ScalingState, backlog: int, running: int, now: float) -> Decision:
        """The worker count for `backlog` with `running` workers at `now` (seconds), after the cooldowns of `state`."""
        want = self.desired(backlog, running)
        if want > running:
            # A backlog ends any low period; a wake and a scale-out each wait out their own cooldown.
            state = replace(state, low_since=None)
            if running == 0 and now - state.last_wake >= self.wake_cooldown:
                return Decision(want, WAKE, want, replace(state, last_wake=now))
            if running > 0 and now - state.last_scale_out >= self.scale_out_cooldown:
                return Decision(want, SCALE_OUT, want, replace(state, last_scale_out=now))
        elif want < running:
            # Scale in only once the backlog has stayed low for the whole cooldown.
            low_since = now if state.low_since is None else state.low_since
            if now - low_since >= self.scale_in_cooldown:
                return Decision(want, SCALE_IN, want, replace(state, low_since=None))
            state = replace(state, low_since=low_since)
        else:
            state = replace(state, low_since=None)
        return Decision(running, HOLD, want, state)


def scaling_policy(pool: WorkerPool) -> ScalingPolicy:
    """The scaling policy of a topology pool."""
    return ScalingPolicy(min_workers=pool.min_workers, max_workers=pool.max_workers, backlog_per_worker=pool.backlog_per_worker)

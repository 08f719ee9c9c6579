"""The local cloud's autoscaler: the stack's scaling policy, applied to local worker processes.

In AWS, Application Auto Scaling reads CloudWatch every minute and changes the service's desired
count. Here a thread reads the same numbers from SQS (waiting + in-flight messages of the pool's
queues) every `interval` seconds, lets the policy decide (infra/scaling.py, `ScalingPolicy.decide`,
which the capacity plan runs too) and starts or stops `celery worker` processes.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dropq.queues import queue_counts
from dropq.ticker import Ticker
from infra.local.workers import WorkerSet
from infra.scaling import ScalingPolicy, ScalingState

logger = logging.getLogger("dropq.autoscaler")

# Observations kept for tests and status (a day of ticks at the default interval).
HISTORY_LENGTH = 50_000


@dataclass(frozen=True)
class Observation:
    """One reading of the autoscaler and what it did: the backlog, and the workers before and after."""

    at: float
    backlog: int
    running: int
    workers: int


class Autoscaler(Ticker):
    """Keeps one pool's worker count where its scaling policy wants it."""

    def __init__(
        self,
        workers: WorkerSet,
        sqs: Any,
        queue_urls: list[str],
        policy: ScalingPolicy,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(f"autoscaler-{workers.pool.name}", interval)
        self.workers = workers
        self.sqs = sqs
        self.queue_urls = queue_urls
        self.policy = policy
        self.clock = clock
        self.history: deque[Observation] = deque(maxlen=HISTORY_LENGTH)
        self.state = ScalingState()

    def backlog(self) -> int:
        """Messages waiting or in flight over the pool's queues (what the stack's `backlog` expression sums)."""
        counts = [queue_counts(self.sqs, url) for url in self.queue_urls]
        return sum(c["visible"] + c["in_flight"] for c in counts)

    def tick(self) -> Observation:
        """Read the backlog once and scale if the policy and its cooldowns say so."""
        backlog, running, now = self.backlog(), self.workers.running, self.clock()
        decision = self.policy.decide(self.state, backlog, running, now)
        self.state, target = decision.state, decision.workers
        if target != running:
            logger.info(
                "backlog %d: scaling pool %s from %d to %d workers (%s)", backlog, self.workers.pool.name, running, target, decision.action
            )
            self.workers.scale_to(target)
        observation = Observation(at=now, backlog=backlog, running=running, workers=target)
        self.history.append(observation)
        return observation

"""The local autoscaler's decisions, tick by tick, with its cooldowns, on a clock the test controls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dropq.topology import TOPOLOGY
from infra.local.autoscaler import Autoscaler
from infra.scaling import ScalingPolicy

POLICY = ScalingPolicy(min_workers=0, max_workers=3, backlog_per_worker=5, scale_out_cooldown=10, scale_in_cooldown=30, wake_cooldown=60)


@dataclass
class Workers:
    """Stands in for a WorkerSet: counts workers instead of starting processes."""

    running: int = 0
    pool: Any = TOPOLOGY.pools[0]
    changes: list[int] = field(default_factory=list)

    def scale_to(self, count: int) -> None:
        self.running = count
        self.changes.append(count)


class Queue:
    """Answers GetQueueAttributes like SQS, with the counts the test sets."""

    def __init__(self) -> None:
        self.visible = self.in_flight = 0

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        counts = {"ApproximateNumberOfMessages": self.visible, "ApproximateNumberOfMessagesNotVisible": self.in_flight}
        return {"Attributes": {name: str(counts.get(name, 0)) for name in AttributeNames}}


def autoscaler() -> tuple[Autoscaler, Workers, Queue, list[float]]:
    now = [0.0]
    workers, queue = Workers(), Queue()
    return Autoscaler(workers, queue, ["url"], POLICY, clock=lambda: now[0]), workers, queue, now  # type: ignore[arg-type]


def test_wakes_then_tracks_then_waits_a_cooldown_before_scaling_out_again() -> None:
    scaler, workers, queue, now = autoscaler()
    queue.visible = 12
    assert scaler.tick().workers == 1, "wake"
    now[0] = 1
    assert scaler.tick().workers == 3, "ceil(12 / 5) = 3, at most max_workers"
    queue.visible = 100
    now[0] = 2
    assert scaler.tick().workers == 3
    assert workers.changes == [1, 3]


def test_scales_in_only_after_the_backlog_stayed_low_for_the_cooldown_and_never_to_zero_with_work_in_flight() -> None:
    scaler, workers, queue, now = autoscaler()
    workers.running = 3
    queue.visible, queue.in_flight = 0, 4
    for t in (0, 10, 29):
        now[0] = t
        assert scaler.tick().workers == 3, f"still within the scale-in cooldown at {t}s"
    now[0] = 30
    assert scaler.tick().workers == 1, "4 in flight still want one worker"
    queue.in_flight = 0
    now[0] = 40
    assert scaler.tick().workers == 1
    now[0] = 70
    assert scaler.tick().workers == 0
    assert workers.changes == [1, 0]


def test_a_backlog_returning_during_the_cooldown_restarts_it() -> None:
    scaler, workers, queue, now = autoscaler()
    workers.running = 2
    scaler.tick()  # low since 0
    queue.visible = 10
    now[0] = 20
    scaler.tick()  # 10 waiting: 2 workers wanted, the low period ends
    queue.visible = 0
    now[0] = 40
    assert scaler.tick().workers == 2, "a new low period starts at 40"
    now[0] = 69
    assert scaler.tick().workers == 2
    now[0] = 70
    assert scaler.tick().workers == 0

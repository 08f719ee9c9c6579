"""The scaling policy the stack deploys and the local autoscaler runs."""

from __future__ import annotations

import dataclasses

import pytest

from dropq.topology import TOPOLOGY, TopologyError, WorkerPool
from infra.scaling import HOLD, SCALE_IN, SCALE_OUT, WAKE, ScalingPolicy, ScalingState, backlog_expression, scaling_policy

POLICY = ScalingPolicy(min_workers=0, max_workers=4, backlog_per_worker=20)


def test_an_idle_pool_stays_at_zero_and_wakes_to_one_worker_on_any_backlog() -> None:
    assert POLICY.desired(backlog=0, running=0) == 0
    assert POLICY.desired(backlog=1, running=0) == 1
    assert POLICY.desired(backlog=10_000, running=0) == 1, "waking starts one; tracking takes it from there"


def test_tracking_aims_at_the_backlog_per_worker_within_the_bounds() -> None:
    assert POLICY.desired(backlog=20, running=1) == 1
    assert POLICY.desired(backlog=21, running=1) == 2
    assert POLICY.desired(backlog=70, running=2) == 4
    assert POLICY.desired(backlog=10_000, running=2) == 4, "never above max_workers"
    assert dataclasses.replace(POLICY, min_workers=2).desired(backlog=0, running=3) == 2, "never below min_workers"


def test_in_flight_messages_keep_a_worker_where_visible_ones_alone_would_scale_to_zero() -> None:
    """QueueProcessingFargateService scales on visible messages: 0 visible, 3 running tasks -> 0 workers. Here, 1."""
    in_flight, visible = 3, 0
    assert POLICY.desired(backlog=visible + in_flight, running=2) == 1
    assert POLICY.desired(backlog=0, running=2) == 0, "and to zero once nothing is in flight"


def test_the_tracked_metric_is_backlog_per_running_worker() -> None:
    assert POLICY.backlog_per_running_worker(backlog=30, running=3) == 10
    assert POLICY.backlog_per_running_worker(backlog=30, running=0) == 30
    assert backlog_expression(["v0", "f0"]) == "FILL(v0, 0) + FILL(f0, 0)"


def test_the_topology_pool_gives_the_policy() -> None:
    pool = TOPOLOGY.pools[0]
    assert scaling_policy(pool) == ScalingPolicy(pool.min_workers, pool.max_workers, pool.backlog_per_worker)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cpu": 300}, "cpu 300 is not a Fargate size"),
        ({"cpu": 256, "memory_mib": 1536}, "memory_mib 1536 does not fit cpu 256"),
        ({"stop_timeout": 121}, "stop_timeout 121s"),
        ({"min_workers": 3, "max_workers": 2}, "min_workers"),
        ({"name": "Default Pool"}, "pool name"),
    ],
)
def test_pools_that_fargate_cannot_run_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        WorkerPool(**{"name": "p", "queues": ("default",), **changes})  # type: ignore[arg-type]


def test_shutdown_grace_ends_inside_the_stop_timeout() -> None:
    pool = TOPOLOGY.pools[0]
    assert 0 < pool.shutdown_grace < pool.stop_timeout


def test_decide_is_the_policy_with_its_cooldowns_as_a_pure_function_of_its_state() -> None:
    """The local autoscaler and the capacity plan both call it; it changes nothing but the state it returns."""
    policy = ScalingPolicy(min_workers=0, max_workers=4, backlog_per_worker=20, scale_out_cooldown=60, scale_in_cooldown=300)
    woken = policy.decide(ScalingState(), backlog=100, running=0, now=0)
    assert (woken.workers, woken.action, woken.state.last_wake) == (1, WAKE, 0)
    grown = policy.decide(woken.state, backlog=100, running=1, now=10)
    assert (grown.workers, grown.action, grown.wanted) == (4, SCALE_OUT, 4)
    held = policy.decide(grown.state, backlog=1000, running=2, now=20)
    assert (held.workers, held.action, held.wanted) == (2, HOLD, 4), "within the scale-out cooldown"
    low = policy.decide(grown.state, backlog=0, running=4, now=100)
    assert (low.workers, low.action, low.state.low_since) == (4, HOLD, 100)
    assert policy.decide(low.state, backlog=0, running=4, now=399).workers == 4
    assert policy.decide(low.state, backlog=0, running=4, now=400).action == SCALE_IN
    assert ScalingState() == ScalingState(), "a value: nothing remembered outside it"

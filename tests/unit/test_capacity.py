"""The capacity plan: a simulation of a deployment under bursts and steady rates, through AWS's delays and limits."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest
from click.testing import CliRunner

from dropq.topology import PROFILES, TOPOLOGY, Topology, WorkerPool
from infra import prices, quotas
from infra.scaling import HOLD, METRIC_PERIOD, SCALE_OUT, Decision, ScalingPolicy, ScalingState, scaling_policy
from ops import capacity
from ops.capacity import (
    ACCOUNT_LAUNCHES,
    LAMBDA_ACCOUNT,
    LAMBDA_RESERVED,
    MAX_WORKERS,
    S3_PUTS,
    SERVICE_LAUNCHES,
    SQS_IN_FLIGHT,
    TABLE_WRITES,
    WORKLOADS,
    Account,
    Arrivals,
    plan,
)
from ops.cli import main

SMALL_IMAGES = WORKLOADS["images-small"]
TEN_MILLION = Arrivals.burst(10_000_000)


def with_pool(topology: Topology, **changes: object) -> tuple[Topology, WorkerPool]:
    """The topology with its default pool changed."""
    pool = dataclasses.replace(topology.pools[0], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(topology, pools=(pool, *topology.pools[1:])), pool


@pytest.fixture(scope="module")
def production() -> capacity.Plan:
    return plan(PROFILES["production"], SMALL_IMAGES, TEN_MILLION)


def test_ten_million_small_images_drain_on_production_well_inside_retention(production: capacity.Plan) -> None:
    assert production.done == 10_000_000
    assert production.expired == production.expired_events == production.dead_lettered == 0
    assert production.drained_at is not None and production.drained_at < production.retention / 10, "well inside the 4 days"
    assert production.peak_tasks == PROFILES["production"].pools[0].max_workers
    # The producer's reserved concurrency (500 batches of 10 at once, 0.25 s each) turns the burst into 20,000 files/s
    # from the first second.
    first = production.first_limit
    assert first is not None and (first.name, first.binding_at, first.bound) == (LAMBDA_RESERVED, 0.0, 500)
    inbox = PROFILES["production"].inbox_events
    assert first.capped_rate == pytest.approx(500 * inbox.batch_size / capacity.PRODUCER_SECONDS) == pytest.approx(20_000)
    # Three PUTs per image on one partitioned prefix (3,500/s) hold 250 workers to 1,167 files/s: that sets the drain.
    assert production.bottleneck is not None and production.bottleneck.name == S3_PUTS
    assert production.capacity == pytest.approx(quotas.S3_PREFIX_PUTS / SMALL_IMAGES.s3_puts)
    assert production.drained_at == pytest.approx(10_000_000 / production.capacity, rel=0.05)


def test_the_same_burst_on_the_default_profile_takes_far_longer_held_by_max_workers(production: capacity.Plan) -> None:
    default = plan(PROFILES["default"], SMALL_IMAGES, TEN_MILLION)
    assert default.drained_at is not None and production.drained_at is not None
    assert default.drained_at > 5 * production.drained_at
    assert default.peak_tasks == 4
    assert default.bottleneck is not None and default.bottleneck.name == MAX_WORKERS
    assert default.capacity_limit == MAX_WORKERS and default.capacity == pytest.approx(4 * SMALL_IMAGES.per_task(default.pool))
    assert default.expired == 0, "15 hours still fit in 4 days of retention"
    # The producer writes nothing to the ledger: what bites first is the account's Lambda concurrency, on the producer;
    # the ledger's writes come at the workers' pace, which a new on-demand table (4,000 writes/s) serves
    first = default.first_limit
    assert first is not None and (first.name, first.held, first.bound) == (LAMBDA_ACCOUNT, "producer", quotas.LAMBDA_ACCOUNT_CONCURRENCY)
    assert not [hit for hit in default.limits if hit.name == TABLE_WRITES and hit.binding_at is not None]


def test_a_steady_rate_above_what_max_workers_serve_grows_the_queue_age_without_bound() -> None:
    hours = 2
    result = plan(TOPOLOGY, SMALL_IMAGES, Arrivals.steady(rate=500, seconds=hours * 3600))
    assert result.grows and result.capacity_limit == MAX_WORKERS
    ages = {s.at: s.oldest_message for s in result.samples}
    during = [ages[minute * 60] for minute in range(30, hours * 60 + 1, 15)]
    assert during == sorted(during) and len(set(during)) == len(during), "older at every reading while files arrive"
    # It ages by 1 - served/arriving seconds each second: no steady state to settle in.
    slope = (ages[7200] - ages[3600]) / 3600
    assert slope == pytest.approx(1 - result.capacity / 500, abs=0.03)
    assert "grows without bound" in result.verdict() and "grows without bound" in result.render()
    # Below what the pool serves, the same rate keeps the oldest message young.
    keeps_up = plan(TOPOLOGY, SMALL_IMAGES, Arrivals.steady(rate=100, seconds=hours * 3600))
    assert not keeps_up.grows and "without bound" not in keeps_up.verdict()
    assert max(s.oldest_message for s in keeps_up.samples if s.at >= 3600) < 5 * 60


def test_the_plan_scales_with_the_policys_own_cooldowns() -> None:
    # A pool that wants a worker per 5,000 messages grows in steps as the backlog of a steady rate grows.
    topology, pool = with_pool(TOPOLOGY, max_workers=50, backlog_per_worker=5000)
    arrivals = Arrivals.steady(rate=200, seconds=3600)

    def scale_outs(cooldown: float) -> list[float]:
        policy = dataclasses.replace(scaling_policy(pool), scale_out_cooldown=cooldown)
        return [e.at for e in plan(topology, SMALL_IMAGES, arrivals, pool=pool, policy=policy).scaling if e.action == SCALE_OUT]

    quick, slow = scale_outs(60), scale_outs(900)
    # Target tracking fires after 3 datapoints above the target (at 3 min); the next step waits out the cooldown.
    assert quick[:2] == [180.0, 240.0]
    assert slow[0] == 180.0 and slow[1] >= 180.0 + 900


def test_a_policy_that_never_scales_leaves_every_file_to_expire() -> None:
    class Frozen(ScalingPolicy):
        def decide(self, state: ScalingState, backlog: int, running: int, now: float) -> Decision:
            return Decision(running, HOLD, running, state)

    pool = TOPOLOGY.pools[0]
    frozen = Frozen(pool.min_workers, pool.max_workers, pool.backlog_per_worker)
    result = plan(TOPOLOGY, SMALL_IMAGES, Arrivals.burst(1000), policy=frozen)
    assert result.done == 0 and result.expired == 1000 and result.peak_tasks == 0
    assert result.ended_at >= result.retention


def test_fargate_starts_at_most_500_tasks_a_minute_for_one_service() -> None:
    topology, _ = with_pool(TOPOLOGY, max_workers=5000)
    # Room everywhere else: the vCPU quota, S3's prefixes, a warm ledger.
    topology = dataclasses.replace(topology, capacity=dataclasses.replace(PROFILES["production"].capacity, ledger_warm_writes=40_000))
    result = plan(topology, WORKLOADS["images-12mp"], TEN_MILLION, account=Account(vcpu_quota=20_000, s3_prefixes=100))
    tasks = [s.running + s.starting for s in result.samples]
    launched_per_minute = [later - earlier for earlier, later in itertools.pairwise(tasks)]
    assert max(launched_per_minute) <= quotas.ECS_SERVICE_LAUNCHES_PER_MINUTE
    assert max(launched_per_minute) >= 0.9 * quotas.ECS_SERVICE_LAUNCHES_PER_MINUTE, "and as many as that: the account's bucket allows more"
    assert result.peak_tasks == 5000
    first_full = next(s.at for s in result.samples if s.running == 5000)
    assert first_full - result.scaling[1].at >= (5000 / quotas.ECS_SERVICE_LAUNCHES_PER_MINUTE - 1) * 60
    assert result.limit(SERVICE_LAUNCHES) is not None


def test_the_accounts_launch_bucket_starts_100_tasks_at_once_then_20_a_second(production: capacity.Plan) -> None:
    # Scaling out from 1 to 250: 100 at once, the other 149 at 20 a second.
    hit = production.limit(ACCOUNT_LAUNCHES)
    assert hit is not None and hit.bound == quotas.FARGATE_LAUNCH_BURST
    assert hit.binding_seconds == pytest.approx(math.ceil(149 / quotas.FARGATE_LAUNCH_RATE))


def test_waking_from_zero_waits_for_a_datapoint_then_the_task_start_time() -> None:
    result = plan(TOPOLOGY, SMALL_IMAGES, Arrivals.burst(100))
    # Given messages from the first second, no task is wanted before the first CloudWatch minute ends ...
    assert result.woke_at == METRIC_PERIOD
    assert result.scaling[0].action == "wake" and result.scaling[0].workers == 1
    # ... nor does one run before it has started.
    assert result.first_running_at == METRIC_PERIOD + quotas.FARGATE_TASK_START_SECONDS
    assert result.first_done_at is not None and result.first_done_at >= result.first_running_at
    assert all(s.done == 0 for s in result.samples if s.at <= result.first_running_at)
    slower = plan(TOPOLOGY, SMALL_IMAGES, Arrivals.burst(100), account=Account(task_start_seconds=150))
    assert slower.first_running_at == METRIC_PERIOD + 150


def test_workers_holding_more_than_sqs_lets_fly_are_held_to_the_in_flight_limit() -> None:
    # Long waits and 100 processes per worker: 2,000 workers would hold 200,000 messages, SQS lets 120,000 fly.
    topology, pool = with_pool(TOPOLOGY, max_workers=2000, concurrency=100, prefetch=0)
    result = plan(topology, WORKLOADS["wait-60s"], TEN_MILLION, account=Account(vcpu_quota=10_000))
    assert result.capacity_limit == SQS_IN_FLIGHT
    assert result.capacity == pytest.approx(quotas.SQS_MAX_IN_FLIGHT / pool.concurrency * WORKLOADS["wait-60s"].per_task(pool))
    hit = result.limit(SQS_IN_FLIGHT)
    assert hit is not None and hit.binding_seconds > 0
    assert max(s.in_flight for s in result.samples) <= quotas.SQS_MAX_IN_FLIGHT
    # The workers that cannot receive wait: files are done at the limit's pace, not at 2,000 workers'.
    done = [s.done for s in result.samples]
    per_minute = max(later - earlier for earlier, later in itertools.pairwise(done))
    assert per_minute == pytest.approx(result.capacity * 60, rel=0.01)


def test_a_burst_of_days_is_simulated_in_minutes_while_nothing_changes() -> None:
    # Counted in steps, not timed: a second a step while anything changes, a minute while nothing does.
    for result in (plan(PROFILES["default"], SMALL_IMAGES, TEN_MILLION), plan(PROFILES["production"], WORKLOADS["wait-60s"], TEN_MILLION)):
        assert result.ended_at > 12 * 3600 and result.steps < result.ended_at / 20, (result.ended_at, result.steps)


def test_the_cost_is_the_quantities_at_the_recorded_prices(production: capacity.Plan) -> None:
    cost, pool = production.cost, production.pool
    assert cost.s3 == pytest.approx(30_000_000 / 1000 * prices.S3.put_thousand + 10_000_000 / 1000 * prices.S3.get_thousand)
    assert pool.spot, "production's default pool runs on Spot, as shipped"
    assert cost.fargate == pytest.approx(
        cost.task_hours
        * (pool.cpu / 1024 * prices.FARGATE_X86.vcpu_hour + pool.memory_mib / 1024 * prices.FARGATE_X86.gb_hour)
        * (1 - prices.FARGATE_SPOT_DISCOUNT)
    )
    # Tasks run from their launch until the pool has scaled in after the drain: longer than the drain at full strength.
    assert production.drained_at is not None and cost.task_hours > 250 * (production.drained_at - 240) / 3600
    # A batch of ten notifications an invocation
    assert cost.invocations == 1_000_000 and cost.total == pytest.approx(sum(usd for _, _, usd in cost.rows))
    topology, _ = with_pool(PROFILES["production"], spot=False)
    on_demand = plan(topology, SMALL_IMAGES, TEN_MILLION).cost
    assert cost.fargate == pytest.approx(on_demand.fargate * (1 - prices.FARGATE_SPOT_DISCOUNT), rel=0.01)


def test_every_modelled_figure_is_a_named_constant_with_an_aws_source() -> None:
    for figure in quotas.FIGURES:
        assert getattr(quotas, figure.name) == figure.value
        assert figure.source.startswith(("https://docs.aws.amazon.com/", "https://aws.amazon.com/"))
        assert figure.status in (quotas.PUBLISHED, quotas.ARCHIVED, quotas.OBSERVED, quotas.ASSUMED, quotas.ACCOUNT)
    assert quotas.SQS_MAX_IN_FLIGHT == 120_000 and quotas.ECS_SERVICE_LAUNCHES_PER_MINUTE == 500


def test_durations_read_and_print_as_a_person_writes_them() -> None:
    assert [capacity.parse_duration(text) for text in ("90", "90s", "30m", "2h", "1.5d")] == [90, 90, 1800, 7200, 129600]
    with pytest.raises(ValueError, match="'soon'"):
        capacity.parse_duration("soon")
    assert [capacity.duration(s) for s in (45, 1000, 7200, 8760, 4 * 86400)] == ["45 s", "16 min 40 s", "2 h", "2 h 26 min", "4 d"]


def test_dropq_plan_prints_the_table_without_aws() -> None:
    # No local cloud, no credentials: an endpoint where nothing listens would fail any AWS call.
    env = {"DROPQ_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    result = CliRunner().invoke(main, ["plan", "--profile", "production", "--burst", "10000000"], env=env)
    assert result.exit_code == 0, result.output
    assert "Drains in" in result.output and "S3 PUTs per prefix" in result.output and "queue over time" in result.output


def test_dropq_plan_json_parses() -> None:
    result = CliRunner().invoke(main, ["plan", "--rate", "500", "--for", "1h", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["grows"] is True and data["bottleneck"] == MAX_WORKERS and data["expired"] == 0
    assert math.isclose(data["arrivals"]["rate"], 500)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workload", "nope"], "unknown workload 'nope'"),
        (["--pool", "nope"], "unknown pool 'nope'"),
        (["--profile", "nope"], "unknown profile 'nope'"),
        (["--burst", "0"], "--burst 0 must be positive"),
        (["--burst", "lots"], "--burst 'lots' is not a number"),
        (["--burst", "10", "--rate", "5", "--for", "1h"], "--burst 10 and --rate/--for"),
        (["--rate", "5"], "--rate needs --for"),
        (["--rate", "5", "--for", "soon"], "'soon'"),
    ],
)
def test_dropq_plan_refuses_bad_input_in_one_line_naming_the_value(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["plan", *args])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ") and message in result.output

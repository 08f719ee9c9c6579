"""The simulation: a deployment stepped through time, a second at a time while anything changes; `plan()` runs it.

The path it follows, what it takes as measured and as modelled, and its simplifications: ops/capacity/__init__.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field

from dropq.topology import DYNAMODB_PARTITION_WRITES, DYNAMODB_TABLE_MAX_UNITS, PROFILES, SQS_MAX_BATCH, Topology, WorkerPool
from infra import prices, quotas
from infra.scaling import METRIC_PERIOD, WAKE, WAKE_EVALUATION_PERIODS, ScalingPolicy, ScalingState, scaling_policy
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
    Hits,
    capacity,
)
from ops.capacity.results import Cost, Plan, Sample, ScaleEvent
from ops.capacity.workloads import (
    HEARTBEAT_WRITES_PER_HOUR,
    IDLE_SQS_REQUESTS_PER_HOUR,
    PRODUCER_MEMORY_GB,
    PRODUCER_SECONDS,
    WORKER_PRICE,
    Account,
    Arrivals,
    Workload,
)

# Below this, a count of files is nothing: the flow is fluid, and sums of millions leave crumbs.
EPSILON = 1e-3
# The longest step while nothing changes: one CloudWatch period.
MAX_STEP = float(METRIC_PERIOD)


def default_pool(topology: Topology) -> WorkerPool:
    """The pool that consumes the topology's default queue (where most files go)."""
    return next(pool for pool in topology.pools if topology.default_queue in pool.queues)


def plan(
    topology: Topology,
    workload: Workload,
    arrivals: Arrivals,
    *,
    pool: str | WorkerPool | None = None,
    account: Account | None = None,
    policy: ScalingPolicy | None = None,
    producer_seconds: float = PRODUCER_SECONDS,
    files_per_invocation: int | None = None,
) -> Plan:
    """Simulate `arrivals` of `workload` on `pool` (by default the default queue's) of `topology`: the plan of it.
    The producer takes `files_per_invocation` files an invocation (by default a full batch of the inbox events queue,
    as under load) in `producer_seconds`."""
    files_per_invocation = files_per_invocation or topology.inbox_events.batch_size
    if isinstance(pool, str):
        pool = topology.pool(pool)
    pool = pool or default_pool(topology)
    if not producer_seconds > 0:
        raise ValueError(f"producer_seconds {producer_seconds} must be positive")
    if files_per_invocation < 1:
        raise ValueError(f"files_per_invocation {files_per_invocation} must be at least 1")
    return _Simulation(
        topology, pool, workload, arrivals, account or Account(), policy or scaling_policy(pool), producer_seconds, files_per_invocation
    ).run()


class _Throughput:
    """A DynamoDB table's (or index's) write units per second: its warm throughput, then on demand's ramp, capped.

    On demand serves twice a previous peak; the plan lets a peak count once it is DYNAMODB_DOUBLING_SECONDS old.
    """

    def __init__(self, warm: float) -> None:
        self.warm = warm
        self.peak = 0.0
        self.matured = 0.0
        self.peaks: deque[list[float]] = deque()

    def capacity(self, now: float) -> float:
        while self.peaks and self.peaks[0][0] <= now - quotas.DYNAMODB_DOUBLING_SECONDS:
            self.matured = max(self.matured, self.peaks.popleft()[1])
        return min(float(DYNAMODB_TABLE_MAX_UNITS), max(self.warm, 2 * self.matured))

    def served(self, now: float, units: float) -> None:
        if units <= self.peak:
            return
        self.peak = units
        # Peaks a minute apart are one: it keeps the list short; a peak then matures up to a minute late (cautious).
        if self.peaks and now - self.peaks[-1][0] < METRIC_PERIOD:
            self.peaks[-1][1] = units
        else:
            self.peaks.append([now, units])

    def next_change(self) -> float:
        return self.peaks[0][0] + quotas.DYNAMODB_DOUBLING_SECONDS if self.peaks else math.inf


def _take(cohorts: deque[list[float]], amount: float) -> float:
    """Remove `amount` from the oldest cohorts first (crumbs left behind too); what was removed."""
    removed = 0.0
    while cohorts and (amount > EPSILON or cohorts[0][1] <= EPSILON):
        head = cohorts[0]
        if head[1] <= amount + EPSILON:
            amount -= head[1]
            removed += head[1]
            cohorts.popleft()
        else:
            head[1] -= amount
            removed += amount
            amount = 0.0
    return removed


@dataclass
class _Period:
    """What a CloudWatch minute gathers: the backlog's maximum, the task counts' averages (as the stack's statistics)."""

    backlog: float = 0.0
    running: float = 0.0
    desired: float = 0.0


@dataclass
class _Simulation:
    topology: Topology
    pool: WorkerPool
    workload: Workload
    arrivals: Arrivals
    account: Account
    policy: ScalingPolicy
    producer_seconds: float
    files_per_invocation: int
    # Cohorts [time, files]: S3's events in the inbox events queue (by drop time), task messages in SQS (by send time).
    events: deque[list[float]] = field(default_factory=deque)
    messages: deque[list[float]] = field(default_factory=deque)
    waiting: float = 0.0
    backlog: float = 0.0
    arrived: float = 0.0
    produced: float = 0.0
    done: float = 0.0
    expired: float = 0.0
    expired_events: float = 0.0
    steps: int = 0
    # ECS: the scalable target's desired count, tasks starting [ready at, count], running, and the launch limits' state.
    desired: int = 0
    starting: deque[list[float]] = field(default_factory=deque)
    n_starting: int = 0
    running: int = 0
    tokens: float = float(quotas.FARGATE_LAUNCH_BURST)
    launches: deque[list[float]] = field(default_factory=deque)
    state: ScalingState = field(default_factory=ScalingState)
    high: int = 0
    low: int = 0
    wake: int = 0
    period: _Period = field(default_factory=_Period)
    hits: Hits = field(default_factory=Hits)
    scaling: list[ScaleEvent] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    task_seconds: float = 0.0
    peak_tasks: int = 0
    peak_backlog: float = 0.0
    peak_age: float = 0.0
    first_done_at: float | None = None
    last_done_at: float | None = None
    woke_at: float | None = None
    first_running_at: float | None = None
    # The last step's rates (files/s), which choose the next step's length.
    producer_rate: float = 0.0
    worker_rate: float = 0.0
    quiet: bool = False

    def __post_init__(self) -> None:
        provisioned = self.topology.capacity
        self.queue = self.topology.queue(self.pool.queues[0])
        self.table = _Throughput(provisioned.ledger_warm_writes or quotas.DYNAMODB_NEW_TABLE_WRITES)
        self.index = _Throughput(provisioned.index_warm_writes or quotas.DYNAMODB_NEW_TABLE_WRITES)
        reserved = provisioned.producer_reserved_concurrency
        self.concurrency = min(self.account.lambda_concurrency, reserved or self.account.lambda_concurrency)
        self.concurrency_limit = LAMBDA_RESERVED if reserved and reserved <= self.account.lambda_concurrency else LAMBDA_ACCOUNT
        self.per_task = self.workload.per_task(self.pool)
        self.hold = self.pool.concurrency + self.pool.prefetch
        self.vcpus = self.pool.cpu / 1024
        self.task_cap = min(quotas.ECS_TASKS_PER_SERVICE, int(self.account.vcpu_quota // self.vcpus))
        # A pool with a minimum keeps that many tasks running before anything arrives.
        self.desired = self.running = self.policy.min_workers
        if self.running:
            self.first_running_at = 0.0
        # Everything has expired by then, whatever happens: a bound on the loop.
        # S3's events wait in the inbox events queue for the producer, as long as its retention.
        self.event_age = self.topology.inbox_events.retention_seconds
        self.horizon = self.arrivals.seconds + self.event_age + self.queue.retention_seconds + 6 * 3600

    # --- the loop ---

    def run(self) -> Plan:
        now, next_datapoint = 0.0, float(METRIC_PERIOD)
        while not self._finished(now):
            dt = self._step_length(now, next_datapoint)
            self._step(now, dt)
            self.steps += 1
            now += dt
            if now >= next_datapoint - 1e-9:
                now = next_datapoint
                self._datapoint(now)
                next_datapoint += METRIC_PERIOD
        return self._plan(now)

    def _finished(self, now: float) -> bool:
        if now >= self.horizon:
            return True
        idle = now >= self.arrivals.seconds and self.arrived >= self.arrivals.files - EPSILON and not self.events and not self.messages
        return idle and self.n_starting == 0 and self.running <= self.policy.min_workers and self.desired <= self.policy.min_workers

    def _step_length(self, now: float, next_datapoint: float) -> float:
        """A second while anything changes; up to the next datapoint while nothing does."""
        longest = next_datapoint - now
        if not self.quiet or now == 0:
            return min(1.0, longest)
        bounds = [longest, MAX_STEP]
        if now < self.arrivals.seconds:
            bounds.append(self.arrivals.seconds - now)
        if self.events:
            bounds.append(self.events[0][0] + self.event_age - now)
        if self.messages:
            bounds.append(self.messages[0][0] + self.queue.retention_seconds - now)
        bounds += [self.table.next_change() - now, self.index.next_change() - now]
        # Stop short of a stage running dry: its rates change there.
        arriving = self.arrivals.rate if self.arrivals.rate is not None and now < self.arrivals.seconds else 0.0
        for amount, net in ((self.waiting, arriving - self.producer_rate), (self.backlog, self.producer_rate - self.worker_rate)):
            if amount > EPSILON and net < 0:
                bounds.append(amount / -net / 2)
        shortest = min(bounds)
        return shortest if shortest >= 1.0 else min(1.0, longest)

    def _step(self, now: float, dt: float) -> None:
        self._arrive(now, dt)
        self._expire(now)
        self._start_tasks(now)
        launching = self._launch(now, dt)
        self._flow(now, dt, launching)
        self.task_seconds += (self.running + self.n_starting) * dt
        self.period.backlog = max(self.period.backlog, self.sqs_backlog)
        self.period.running += self.running * dt
        self.period.desired += self.desired * dt
        self.peak_tasks = max(self.peak_tasks, self.running)
        self.peak_backlog = max(self.peak_backlog, self.sqs_backlog)
        if self.messages:
            self.peak_age = max(self.peak_age, now + dt - self.messages[0][0])

    def _arrive(self, now: float, dt: float) -> None:
        if self.arrivals.rate is None:
            amount = self.arrivals.files - self.arrived
        else:
            overlap = max(0.0, min(now + dt, self.arrivals.seconds) - now)
            amount = min(self.arrivals.rate * overlap, self.arrivals.files - self.arrived)
        if amount > EPSILON:
            self.events.append([now, amount])
            self.waiting += amount
            self.arrived += amount

    def _expire(self, now: float) -> None:
        """Events past the producer's maximum age go to its failure queue; messages past retention are deleted."""
        while self.events and self.events[0][0] <= now - self.event_age:
            dropped, count = self.events.popleft()
            self.waiting -= count
            self.expired_events += count
            self.hits.touch(LAMBDA_EVENT_AGE, PRODUCER, "s", now, now - dropped, self.event_age, 0.0)
        while self.messages and self.messages[0][0] <= now - self.queue.retention_seconds:
            sent, count = self.messages.popleft()
            self.backlog -= count
            self.expired += count
            self.hits.touch(SQS_RETENTION, QUEUE, "s", now, now - sent, self.queue.retention_seconds, 0.0)

    def _start_tasks(self, now: float) -> None:
        while self.starting and self.starting[0][0] <= now + 1e-9:
            _, count = self.starting.popleft()
            self.n_starting -= int(count)
            self.running += int(count)
            if self.first_running_at is None:
                self.first_running_at = now

    @property
    def in_process(self) -> float:
        """Messages being worked on (received, not yet deleted): the workers' rate times a file's wall time (Little's law)."""
        return self.worker_rate * self.workload.wall

    @property
    def in_flight(self) -> float:
        """Messages in flight: those being worked on, and those the workers hold ready (prefetched), within SQS's limit."""
        held = min(self.backlog, max(0.0, self.running * self.hold - self.in_process))
        return min(float(quotas.SQS_MAX_IN_FLIGHT), self.in_process + held)

    @property
    def sqs_backlog(self) -> float:
        """What the stack's `backlog` metric sums: messages visible and in flight."""
        return self.backlog + self.in_process

    def _ecs_target(self) -> int:
        return min(self.desired, self.task_cap)

    def _launch(self, now: float, dt: float) -> str | None:
        """Start or stop tasks toward the desired count, as fast as the launch limits allow; the limit that held it."""
        self.tokens = min(float(quotas.FARGATE_LAUNCH_BURST), self.tokens + quotas.FARGATE_LAUNCH_RATE * dt)
        while self.launches and self.launches[0][0] <= now - 60:
            self.launches.popleft()
        target = self._ecs_target()
        if self.desired > target:
            limit, bound = (
                (TASKS_PER_SERVICE, quotas.ECS_TASKS_PER_SERVICE) if target == quotas.ECS_TASKS_PER_SERVICE else (VCPU_QUOTA, self.task_cap)
            )
            self.hits.touch(limit, ECS, "tasks", now, self.desired, bound, 0.0)
        gap = target - self.running - self.n_starting
        if gap < 0:
            self._stop(-gap)
            return None
        if gap == 0:
            return None
        service_room = quotas.ECS_SERVICE_LAUNCHES_PER_MINUTE - int(sum(count for _, count in self.launches))
        count = min(gap, int(self.tokens), service_room)
        held = None
        if gap > service_room:
            self.hits.touch(SERVICE_LAUNCHES, ECS, "tasks/min", now, gap, quotas.ECS_SERVICE_LAUNCHES_PER_MINUTE, 0.0)
            held = SERVICE_LAUNCHES
        if gap > int(self.tokens):
            self.hits.touch(ACCOUNT_LAUNCHES, ECS, "tasks at once", now, gap, quotas.FARGATE_LAUNCH_BURST, 0.0)
            held = held if held and service_room <= int(self.tokens) else ACCOUNT_LAUNCHES
        if count > 0:
            self.tokens -= count
            self.launches.append([now, count])
            self.starting.append([now + self.account.task_start_seconds, count])
            self.n_starting += count
        return held

    def _stop(self, count: int) -> None:
        """Scale in: cancel tasks still starting (the newest first), then stop idle running ones."""
        while count and self.starting:
            newest = self.starting[-1]
            cancel = min(count, int(newest[1]))
            newest[1] -= cancel
            self.n_starting -= cancel
            count -= cancel
            if newest[1] <= 0:
                self.starting.pop()
        self.running -= min(count, self.running)

    def _flow(self, now: float, dt: float, launching: str | None) -> None:
        """Move files: producer (Lambda) -> SQS -> workers, each held to its limits, DynamoDB and S3 shared."""
        work, hits = self.workload, self.hits
        # The producer: its concurrency, ramping by 1,000 every 10 s from the first event.
        ramp = quotas.LAMBDA_SCALING_STEP * (1 + math.floor(now / quotas.LAMBDA_SCALING_PERIOD))
        executions = min(self.concurrency, ramp)
        producer_cap = executions * self.files_per_invocation / self.producer_seconds
        producer_want = self.waiting / dt
        producer = min(producer_cap, producer_want)
        producer_limit = None
        if producer_want > producer_cap * (1 + 1e-9):
            name = LAMBDA_SCALING if ramp < self.concurrency else self.concurrency_limit
            bound = ramp if ramp < self.concurrency else self.concurrency
            hits.touch(
                name, PRODUCER, "executions", now, producer_want * self.producer_seconds / self.files_per_invocation, bound, producer_cap
            )
            producer_limit = name
        # The workers: their processes or vCPUs, and what SQS lets them hold in flight.
        tasks = min(float(self.running), quotas.SQS_MAX_IN_FLIGHT / self.hold)
        worker_cap = tasks * self.per_task
        available = (self.backlog + producer * dt) / dt
        worker = min(worker_cap, available)
        worker_limit = None
        if self.running * self.hold > quotas.SQS_MAX_IN_FLIGHT and self.backlog > quotas.SQS_MAX_IN_FLIGHT:
            hits.touch(SQS_IN_FLIGHT, QUEUE, "messages", now, self.running * self.hold, quotas.SQS_MAX_IN_FLIGHT, worker_cap)
            worker_limit = SQS_IN_FLIGHT
        # S3, the workers' alone: the outputs' PUTs and the inputs' GETs, per partitioned prefix.
        storage_limit = None
        for name, per_file, per_prefix in ((S3_PUTS, work.s3_puts, quotas.S3_PREFIX_PUTS), (S3_GETS, work.s3_gets, quotas.S3_PREFIX_GETS)):
            wanted, bound = worker * per_file, float(per_prefix * self.account.s3_prefixes)
            if wanted > bound * (1 + 1e-9):
                hits.touch(name, STORAGE, f"{name.split()[1]}/s", now, wanted, bound, 0.0)
                if bound / per_file < worker:
                    worker, storage_limit = bound / per_file, name
        # The ledger: write units on the table, its busiest index and that index's hottest key, all the workers' (the
        # producer writes none). A throttled request is retried, so the workers get what the ledger serves.
        table_units = worker * work.table_writes
        index_units = worker * work.index_writes
        ledger = {
            TABLE_WRITES: (table_units, self.table.capacity(now)),
            INDEX_WRITES: (index_units, self.index.capacity(now)),
            HOT_KEY: (index_units * work.hot_key_share, float(DYNAMODB_PARTITION_WRITES)),
        }
        factor, ledger_limit = 1.0, None
        for name, (units, bound) in ledger.items():
            if units > bound * (1 + 1e-9):
                hits.touch(name, LEDGER, "write units/s", now, units, bound, 0.0)
                if bound / units < factor:
                    factor, ledger_limit = bound / units, name
        producer_out, worker_out = producer * factor, worker * factor
        # Which limit held each stage this step: the tightest, which is the last applied that cut.
        binding: dict[str, tuple[str, float]] = {}
        if producer_out < producer_want * (1 - 1e-9):
            name = ledger_limit if factor < 1 else producer_limit
            if name:
                binding[name] = (PRODUCER, producer_out)
        if worker_out < available * (1 - 1e-9):
            name = (ledger_limit if factor < 1 else None) or storage_limit or worker_limit or self._task_limit(launching)
            if name and name not in binding:
                binding[name] = (WORKERS, worker_out)
        for name, (stage, rate) in binding.items():
            hits.bind(name, now, dt, stage, rate)
        self._move(now, dt, producer_out, worker_out)

    def _task_limit(self, launching: str | None) -> str | None:
        """Why the running tasks are as few as they are, if a limit (not a delay) is why."""
        if launching is not None:
            return launching
        target = self._ecs_target()
        if self.n_starting or self.running < target:
            return None
        if target < self.desired:
            return TASKS_PER_SERVICE if target == quotas.ECS_TASKS_PER_SERVICE else VCPU_QUOTA
        return MAX_WORKERS if self.desired == self.policy.max_workers and MAX_WORKERS in self.hits.hits else None

    def _move(self, now: float, dt: float, producer: float, worker: float) -> None:
        produced = _take(self.events, min(producer * dt, self.waiting))
        self.waiting = self.waiting - produced if self.events else 0.0
        if produced > EPSILON:
            self.messages.append([now, produced])
            self.backlog += produced
            self.produced += produced
        finished = _take(self.messages, min(worker * dt, self.backlog))
        self.backlog = self.backlog - finished if self.messages else 0.0
        if finished > EPSILON:
            self.done += finished
            if self.first_done_at is None:
                self.first_done_at = now + self.workload.wall
            # The last file starts once the queue runs dry and is done its wall time later.
            self.last_done_at = now + min(dt, finished / max(worker, EPSILON)) + self.workload.wall
        work = self.workload
        table = finished * work.table_writes
        index = finished * work.index_writes
        self.table.served(now, table / dt)
        self.index.served(now, index / dt)
        previous = (self.producer_rate, self.worker_rate)
        self.producer_rate, self.worker_rate = produced / dt, finished / dt
        steady = all(abs(a - b) <= 1e-6 * max(1.0, a, b) for a, b in zip(previous, (self.producer_rate, self.worker_rate), strict=True))
        ramp_done = quotas.LAMBDA_SCALING_STEP * (1 + math.floor(now / quotas.LAMBDA_SCALING_PERIOD)) >= self.concurrency
        settled = self.n_starting == 0 and self.running == self._ecs_target()
        self.quiet = settled and (ramp_done or not self.events) and steady

    # --- scaling: a CloudWatch datapoint a minute, the alarms, and the policy's decision ---

    def _datapoint(self, now: float) -> None:
        policy, period = self.policy, self.period
        backlog = math.ceil(period.backlog - EPSILON)
        running = period.running / METRIC_PERIOD
        desired = math.ceil(period.desired / METRIC_PERIOD - EPSILON)
        metric = policy.backlog_per_running_worker(backlog, running)
        self.high = self.high + 1 if metric > policy.backlog_per_worker else 0
        self.low = self.low + 1 if metric < policy.backlog_per_worker * quotas.TARGET_TRACKING_SCALE_IN_FRACTION else 0
        self.wake = self.wake + 1 if policy.wants_wake(backlog, desired) else 0
        scale_out = self.wake >= WAKE_EVALUATION_PERIODS or self.high >= quotas.TARGET_TRACKING_SCALE_OUT_DATAPOINTS
        scale_in = self.low >= quotas.TARGET_TRACKING_SCALE_IN_DATAPOINTS
        if scale_out or scale_in:
            decision = policy.decide(self.state, backlog, self.desired, now)
            up, down = decision.wanted > self.desired, decision.wanted < self.desired
            # An alarm moves the count its own way only: a scale-out alarm never scales in, nor the other way round.
            if (up and scale_out) or (down and scale_in) or not (up or down):
                self.state = decision.state
                if up and self.desired > 0:
                    # What target tracking would ask without the pool's bound (a wake asks one worker, whatever the backlog).
                    unbounded = dataclasses.replace(policy, max_workers=2**62).desired(backlog, self.desired)
                    if unbounded > policy.max_workers:
                        self.hits.touch(MAX_WORKERS, WORKERS, "workers", now, unbounded, policy.max_workers, 0.0)
                if decision.workers != self.desired:
                    self.scaling.append(ScaleEvent(at=now, action=decision.action, workers=decision.workers, backlog=backlog))
                    if self.woke_at is None and decision.action == WAKE:
                        self.woke_at = now
                    self.desired = decision.workers
                    # ECS starts (or stops) tasks from the next second on: step by the second again.
                    self.quiet = False
        self.samples.append(
            Sample(
                at=now,
                arrived=self.arrived,
                producer_waiting=self.waiting,
                backlog=self.sqs_backlog,
                in_flight=self.in_flight,
                done=self.done,
                expired=self.expired + self.expired_events,
                desired=self.desired,
                running=self.running,
                starting=self.n_starting,
                oldest_message=now - self.messages[0][0] if self.messages else 0.0,
                oldest_event=now - self.events[0][0] if self.events else 0.0,
            )
        )
        self.period = _Period(backlog=self.sqs_backlog)

    # --- the result ---

    def _cost(self) -> Cost:
        work, pool = self.workload, self.pool
        task_hours = self.task_seconds / 3600
        fargate = self.task_seconds * WORKER_PRICE.per_second(self.vcpus, pool.memory_mib / 1024, spot=pool.spot)
        invocations = self.produced / self.files_per_invocation
        # The producer sends its files with SendMessageBatch, ten at most per request.
        producer_sqs = invocations * math.ceil(self.files_per_invocation / SQS_MAX_BATCH)
        idle_hours = max(0.0, task_hours - self.done / self.per_task / 3600)
        sqs_requests = producer_sqs + self.done * work.sqs_requests + idle_hours * IDLE_SQS_REQUESTS_PER_HOUR * len(pool.queues)
        write_units = self.done * (work.table_writes + work.billed_index_writes) + task_hours * HEARTBEAT_WRITES_PER_HOUR
        gb_seconds = invocations * self.producer_seconds * PRODUCER_MEMORY_GB
        puts, gets = self.done * work.s3_puts, self.done * work.s3_gets
        return Cost(
            task_hours=task_hours,
            fargate=fargate,
            sqs_requests=sqs_requests,
            sqs=sqs_requests / 1e6 * prices.SQS.standard_million,
            write_units=write_units,
            dynamodb=write_units / 1e6 * prices.DYNAMODB.write_million,
            invocations=invocations,
            lambda_gb_seconds=gb_seconds,
            lambda_=invocations / 1e6 * prices.LAMBDA.request_million + gb_seconds * prices.LAMBDA.arm64_gb_second,
            s3_puts=puts,
            s3_gets=gets,
            s3=puts / 1000 * prices.S3.put_thousand + gets / 1000 * prices.S3.get_thousand,
        )

    def _plan(self, now: float) -> Plan:
        served, limit = capacity(self.topology, self.pool, self.workload, self.account, self.producer_seconds, self.files_per_invocation)
        profile = next((name for name, topology in PROFILES.items() if topology == self.topology), "custom")
        return Plan(
            profile=profile,
            pool=self.pool,
            queue=self.queue.name,
            retention=self.queue.retention_seconds,
            workload=self.workload,
            arrivals=self.arrivals,
            account=self.account,
            policy=self.policy,
            drained_at=self.last_done_at,
            first_done_at=self.first_done_at,
            woke_at=self.woke_at,
            first_running_at=self.first_running_at,
            peak_tasks=self.peak_tasks,
            peak_backlog=self.peak_backlog,
            peak_age=self.peak_age,
            done=round(self.done),
            expired=round(self.expired),
            expired_events=round(self.expired_events),
            dead_lettered=0,
            capacity=served,
            capacity_limit=limit,
            limits=self.hits.result(),
            scaling=tuple(self.scaling),
            samples=tuple(self.samples),
            cost=self._cost(),
            ended_at=now,
            steps=self.steps,
        )

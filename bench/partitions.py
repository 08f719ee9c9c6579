"""Partition load: every DynamoDB request of the real flow, attributed at the server to its table, index and partition key.

DynamoDB serves at most 1,000 write units and 3,000 read units a second on one partition key value, of a table or
of an index, whatever the table's capacity. The local cloud runs with its server metering each request
(infra/local/meter.py); each workload's files go through the whole flow (S3, producer, SQS, workers, ledger), and
each key's units are set against what drives them:

- `files`: a key many files share (a shard of an index): its load grows with the file rate, so the rate at which
  its hottest key reaches the limit is 1,000 / (that key's write units per file) files/s (3,000 for reads);
- `file`: a key of one file (its ledger entry, its task's result): its load is that file's own, at any rate;
- `workers`, `processes`: written on a timer by each worker or worker process (heartbeats, outcome counts): the
  load grows with the pool, so it is taken at the production pool's full size;
- `readers`: read by the report and the dashboard, per run or refresh, however many files there are
  (their cost is measured below, per refresh);
- `fixed`: written on a schedule (periodic runs).

A file-driven family's writes per file are measured; how evenly its shards share them at the target rate is the
real shard function (dropq/shards.py) applied to one second of the target's files, with keys like the run's: the
busiest shard's share, the worst of several such seconds. The projected rate is the one at which that busiest
shard would take 1,000 write units a second. The run's own hottest key is reported beside it: with a few hundred
files over 64 shards, it mostly measures sampling luck.

A dashboard refresh is measured the same way, on a ledger filled with 1,000 and then 10,000 files.
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.config import Config

from bench.latency import small_jpeg
from bench.outcomes import finished_at
from bench.throughput import cpu_ms
from dropq.counts import counts_for, minute_of, outcome
from dropq.deployment import local_deployment
from dropq.enqueue import Enqueued, send_all, task_kwargs
from dropq.ledger import file_pk, iso, ledger_for
from dropq.objects import ObjectRef
from dropq.protocol import PROCESS_TASK, build_task_message
from dropq.settings import Settings
from dropq.shards import shard_of, sharded
from dropq.topology import DYNAMODB_PARTITION_READS, DYNAMODB_PARTITION_WRITES, PRODUCTION
from infra.local.cloud import LocalCloud
from infra.local.meter import Access, read_meter
from infra.local.server import MotoServer, recorded_actions
from ops.dashboard.monitor import Monitor
from tasks.tally import FLUSH_SECONDS

SETTLE_SECONDS = 900
# How long the files that warm the waiting pool up wait.
WARMUP_WAIT_SECONDS = 0.5
# Seconds new workers have to start consuming (their first heartbeat).
READY_SECONDS = 60
# How often an open dashboard refreshes (ops/dashboard/static/dashboard.js polls its state every 2 s).
REFRESH_SECONDS = 2.0
# BatchWriteItem takes at most 25 items: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html
BATCH_WRITE_ITEMS = 25
# The benchmark's own requests (waiting for outcomes) name themselves, so that the meter's figures are dropq's alone.
BENCH_CLIENT = "dropq-bench"
# What a deployment must hold without a hot key (the target), in files per second.
TARGET_FILES_PER_SECOND = 10_000
FILE, FILES, WORKERS, PROCESSES, READERS, FIXED = "file", "files", "workers", "processes", "readers", "fixed"
# Seconds of the target's files over which the busiest shard's share is taken (the worst second counts).
SPREAD_SECONDS = 10


@dataclass(frozen=True)
class Family:
    """A kind of partition key: which table and index it is on, what it is, and what drives its load."""

    table: str
    index: str | None
    name: str
    driver: str

    @property
    def label(self) -> str:
        return f"{self.table}{'/' + self.index if self.index else ''}: {self.name}"


def family_of(access: Access, settings: Settings) -> Family:
    """The family of an access's partition key; an unknown key is an error, so that no new key goes unaccounted."""
    topology = settings.topology
    ledger, results = settings.physical_name(topology.ledger_table.name), settings.physical_name(topology.results_table.name)
    key = access.key
    if access.table == ledger and access.index is not None:
        if access.kind == "read":
            return Family("ledger", access.index, "shards read", READERS)
        return Family("ledger", access.index, "shards", FILES)
    if access.table == ledger:
        for prefix, name, driver in (
            ("file#", "file entries", FILE),
            ("worker", "heartbeats", WORKERS),
            ("counts#", "outcome counts", PROCESSES),
            ("schedule#", "periodic runs", FIXED),
        ):
            if key.startswith(prefix):
                return Family("ledger", None, name, driver)
    if access.table == results:
        # Celery's result backend: a key per task ("celery-task-meta-<id>") and per chord ("chord-unlock-<id>").
        return Family("results", None, "task results", FILE)
    raise ValueError(f"no family for DynamoDB key {key!r} on {access.table}/{access.index}: say what drives its load")


@dataclass(frozen=True)
class FamilyLoad:
    """One family's requests during a workload: its totals, its hottest key, and that key's busiest second."""

    family: Family
    keys: int
    requests: int
    write_units: float
    read_units: float
    hottest_key: str
    hottest_write_units: float
    hottest_read_units: float
    peak_units_per_second: float


def family_loads(accesses: list[Access], settings: Settings) -> list[FamilyLoad]:
    """Group accesses by family and key."""
    by_family: dict[Family, list[Access]] = defaultdict(list)
    for access in accesses:
        by_family[family_of(access, settings)].append(access)
    loads = []
    for family, found in sorted(by_family.items(), key=lambda item: item[0].label):
        writes: Counter[str] = Counter()
        reads: Counter[str] = Counter()
        per_second: Counter[tuple[str, int]] = Counter()
        for access in found:
            (writes if access.kind == "write" else reads)[access.key] += access.units
            per_second[(access.key, int(access.t))] += access.units
        keys = set(writes) | set(reads)
        hottest = max(keys, key=lambda k: (writes[k], reads[k]))
        loads.append(
            FamilyLoad(
                family=family,
                keys=len(keys),
                requests=len(found),
                write_units=sum(writes.values()),
                read_units=sum(reads.values()),
                hottest_key=hottest,
                hottest_write_units=writes[hottest],
                hottest_read_units=reads[hottest],
                peak_units_per_second=max(per_second.values()),
            )
        )
    return loads


@dataclass(frozen=True)
class Workload:
    """Files of one kind: their names and content, and the pipeline that must process them."""

    name: str
    pipeline: str
    files: Callable[[int], list[tuple[str, bytes]]]
    # None: dropped in the inbox (the producer routes them); else enqueued on that queue as the producer would.
    queue: str | None = None


def _tables(count: int) -> list[tuple[str, bytes]]:
    return [(f"table-{i:05d}.csv", f"id,city,amount\n{i},Lyon,{i * 3}.5\n{i + 1},Porto,{i}.25\n".encode()) for i in range(count)]


def small_workloads() -> list[Workload]:
    """A small file of each built-in pipeline."""
    jpeg = small_jpeg()
    return [
        Workload("small images", "images", lambda n: [(f"photo-{i:05d}.jpg", jpeg) for i in range(n)]),
        Workload("small tables", "tables", _tables),
        Workload("metadata", "metadata", lambda n: [(f"note-{i:05d}.txt", f"note {i}\n".encode()) for i in range(n)]),
    ]


def waiting_workload(seconds: float) -> Workload:
    """Files that each take `seconds` without using CPU (bench/workloads.py: `wait`), on the urgent pool, which prefetches none."""
    files = lambda n: [(f"wait-{i:05d}.txt", f"{seconds}".encode()) for i in range(n)]  # noqa: E731
    return Workload(f"files of {seconds:.0f} s", "wait", files, "urgent")


@dataclass(frozen=True)
class PhaseLoad:
    """What one workload cost DynamoDB, per family, and the worker CPU it took."""

    workload: str
    pipeline: str
    files: int
    seconds: float
    workers: int
    processes: int
    worker_cpu_ms: float  # the pool processes', where the tasks ran
    families: list[FamilyLoad]
    # The busiest shard's share of a second of the target's files (see the module's docstring).
    busiest_share: float

    def writes_per_file(self, load: FamilyLoad) -> float:
        return load.write_units / self.files

    def reads_per_file(self, load: FamilyLoad) -> float:
        return load.read_units / self.files

    def at_production(self, load: FamilyLoad) -> float:
        """A timer-driven key's units/s with the production pool at its largest (the pool's workers or processes)."""
        pool = PRODUCTION.pools[0]
        scale = pool.max_workers / self.workers if load.family.driver == WORKERS else pool.max_workers * pool.concurrency / self.processes
        return (load.hottest_write_units + load.hottest_read_units) / self.seconds * scale

    def projected(self, load: FamilyLoad) -> float:
        """Files per second before this family's busiest shard passes a partition's write limit (inf where files do not drive it)."""
        if load.family.driver != FILES or not load.write_units:
            return float("inf")
        return DYNAMODB_PARTITION_WRITES / (self.writes_per_file(load) * self.busiest_share)

    def units(self, table: str, index: str | None = None, kind: str = "write") -> float:
        """Units per file on a table (its file entries) or one of its indexes, of file-driven keys only."""
        found = [
            load
            for load in self.families
            if load.family.table == table and load.family.index == index and load.family.driver in (FILE, FILES)
        ]
        return sum(load.write_units if kind == "write" else load.read_units for load in found) / self.files

    @property
    def projected_files_per_second(self) -> float:
        """The rate at which the first file-driven key would pass its limit."""
        return min((self.projected(load) for load in self.families), default=float("inf"))

    @property
    def bounded_keys_hold(self) -> bool:
        """Whether every key not driven by the file rate stays under the limits: a file's own, and the timers' at full size."""
        for load in self.families:
            if load.family.driver == FILE and load.peak_units_per_second > DYNAMODB_PARTITION_WRITES:
                return False
            if load.family.driver in (WORKERS, PROCESSES) and self.at_production(load) > DYNAMODB_PARTITION_WRITES:
                return False
        return True


def busiest_share(
    shards: int, key: Callable[[str], str], per_second: int = TARGET_FILES_PER_SECOND, seconds: int = SPREAD_SECONDS
) -> float:
    """The busiest shard's share of one second's `per_second` files, the worst of `seconds` seconds, by the real shard
    function; `key` makes an item key from a random name (numbered names spread more evenly than real ones would)."""
    names = random.Random(0)
    worst = 0.0
    for _ in range(seconds):
        spread = Counter(shard_of(key(f"{names.getrandbits(64):016x}"), shards) for _ in range(per_second))
        worst = max(worst, max(spread.values()) / per_second)
    return worst


def _pool_pids(cloud: LocalCloud) -> list[int]:
    """The pool processes of every worker: where tasks run. A worker's main process receives and acknowledges messages
    (its cost per task is the no-op drain's, above) and otherwise waits on long polls, heartbeats and the keeper."""
    pids = []
    for workers in cloud.pools:
        for process in workers.processes.values():
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
            pids += [int(c) for c in children.read_text().split()] if children.exists() else []
    return pids


def _enqueue(settings: Settings, refs: list[ObjectRef], pipeline: str, queue: str) -> None:
    """What the producer does for each file (its message: it writes nothing to the ledger), for a pipeline no route
    leads to."""
    items = []
    for ref in refs:
        task_id, body = build_task_message(PROCESS_TASK, queue, task_kwargs(ref, pipeline))
        items.append(Enqueued(ref=ref, pipeline=pipeline, queue=queue, task_id=task_id, body=body))
    send_all(settings.client("sqs"), settings.queue_url(queue), items)


def measure(cloud: LocalCloud, workload: Workload, count: int, run: str, counted: bool = True) -> PhaseLoad:
    """Put `count` files of a workload through the whole flow; what DynamoDB served for them, by family (with the
    outcome counts the workers add a few seconds later, unless not `counted`: a warm-up's)."""
    assert cloud.metering is not None, "the cloud must meter DynamoDB (LocalCloud(meter=True))"
    settings = cloud.settings
    s3: Any = settings.client("s3")
    bucket, inbox = settings.bucket, settings.topology.inbox_prefix
    files = workload.files(count)
    prefix = f"{inbox}{run}/" if workload.queue is None else f"bench/{run}/"
    pids = _pool_pids(cloud)
    before = len(read_meter(cloud.metering))
    cpu, started = sum(cpu_ms(pid) for pid in pids), time.monotonic()
    refs = []
    for name, data in files:
        response = s3.put_object(Bucket=bucket, Key=prefix + name, Body=data)
        refs.append(ObjectRef(bucket, prefix + name, response["ETag"].strip('"'), len(data)))
    if workload.queue is not None:
        _enqueue(settings, refs, workload.pipeline, workload.queue)
    watcher = ledger_for(settings, client=settings.client("dynamodb", config=Config(user_agent_appid=BENCH_CLIENT)))
    finished_at(watcher, bucket, [ref.key for ref in refs], SETTLE_SECONDS, workload.name)
    if counted:
        time.sleep(FLUSH_SECONDS + 1)  # the outcome counts of the last files are added
    seconds = time.monotonic() - started
    worker_cpu = sum(cpu_ms(pid) for pid in pids) - cpu
    accesses = [a for a in read_meter(cloud.metering)[before:] if a.client != BENCH_CLIENT]
    workers = sum(w.running for w in cloud.pools)
    processes = sum(w.running * w.pool.concurrency for w in cloud.pools)
    # Keys like the run's: the same bucket, prefix and suffix.
    suffix = Path(files[0][0]).suffix
    share = busiest_share(settings.topology.ledger_table.shards, lambda name: file_pk(bucket, f"{prefix}{name}{suffix}"))
    loads = family_loads(accesses, settings)
    return PhaseLoad(workload.name, workload.pipeline, count, seconds, workers, processes, worker_cpu, loads, share)


def measure_all(cloud: LocalCloud, files: int, waiting: int, seconds: float, warm: bool = True) -> list[PhaseLoad]:
    """Each small workload with `files` files on the running pools, then `waiting` files of `seconds` each on as many
    urgent workers as they need to run at once; `warm`: each after a warm-up (the smoke run goes without)."""
    phases = []
    processes = sum(w.running * w.pool.concurrency for w in cloud.pools)
    for workload in small_workloads():
        # Each worker process's first files of a kind pay for its imports and clients: a warm pool is measured.
        if warm:
            measure(cloud, workload, 2 * processes, f"warmup-{workload.pipeline}", counted=False)
        phases.append(measure(cloud, workload, files, f"partitions-{workload.pipeline}"))
    urgent = next(workers for workers in cloud.pools if workers.pool.name == "urgent")
    urgent.scale_to(-(-waiting // urgent.pool.concurrency))
    ledger, deadline = ledger_for(cloud.settings), time.monotonic() + READY_SECONDS
    while sum(w.get("pool") == "urgent" for w in ledger.workers()) < urgent.running and time.monotonic() < deadline:
        time.sleep(0.5)  # started, not yet consuming: their start is not the workload's
    try:
        if warm:
            measure(cloud, waiting_workload(WARMUP_WAIT_SECONDS), waiting, "warmup-wait", counted=False)
        phases.append(measure(cloud, waiting_workload(seconds), waiting, "partitions-wait"))
    finally:
        urgent.scale_to(0)
    return phases


@dataclass(frozen=True)
class RefreshCost:
    """What one dashboard refresh asked of AWS, with `files` in the ledger."""

    files: int
    requests: Counter[tuple[str, str]]
    dynamodb_read_units: float
    # The read units of the key a refresh reads most (the heartbeats', the counts' or one shard's).
    busiest_key_units: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def dashboards(self) -> float:
        """Dashboards refreshing every REFRESH_SECONDS before the busiest key passes a partition's read limit."""
        return DYNAMODB_PARTITION_READS * REFRESH_SECONDS / self.busiest_key_units if self.busiest_key_units else float("inf")


def fill_ledger(settings: Settings, count: int, run: str) -> None:
    """Put `count` file entries in the ledger, 1 in 50 failed, with an hour of outcome counts.

    Two entries are recorded by the ledger itself (claimed, then succeeded or failed); the rest are copies of
    them under new keys, with their index keys made as the ledger makes them (dropq/shards.py), written 25 a
    BatchWriteItem: moto takes about 15 ms per UpdateItem, and a refresh reads only what the indexes hold.
    """
    ledger, client, spec = ledger_for(settings), settings.client("dynamodb"), settings.topology.ledger_table
    templates = []
    for state in ("succeeded", "failed"):
        ref = ObjectRef(settings.bucket, f"{settings.topology.inbox_prefix}{run}/template-{state}.txt", uuid.uuid4().hex, 10)
        claim = ledger.claim(ref, "metadata", f"task-{run}-{state}", worker="bench", lease_seconds=60, queue="default")
        assert claim.owner
        if state == "failed":
            assert ledger.mark_failed(ref, claim.owner, "the file is not a number")
        else:
            assert ledger.mark_succeeded(ref, claim.owner, [f"processed/metadata/{ref.key}/metadata.json"], 5, "0" * 64)
        key = {"pk": {"S": file_pk(ref.bucket, ref.key)}, "sk": {"S": ref.etag}}
        templates.append(client.get_item(TableName=ledger.table_name, Key=key, ConsistentRead=True)["Item"])
    now = datetime.now(UTC)
    # Over the last hour, within today: in the first hour after midnight UTC the recent files of a refresh span two days,
    # which doubles its queries (bounded still); both sizes of ledger are measured on one day's keys, to compare them.
    span = min(3600.0, (now - now.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds() - 1)
    items = []
    for i in range(count - 2):
        item = dict(templates[1] if i % 50 == 0 else templates[0])
        key = f"{settings.topology.inbox_prefix}{run}/file-{i:06d}.txt"
        pk = file_pk(settings.bucket, key)
        at = iso(now - timedelta(seconds=max(0.0, span) * i / count))
        item.update(pk={"S": pk}, sk={"S": uuid.uuid4().hex}, key={"S": key}, updated_at={"S": at}, finished_at={"S": at})
        for index in spec.indexes:
            if index.partition_key in item:
                item[index.partition_key] = {"S": sharded(at[:10], pk, spec.shards)}
                item[index.sort_key] = {"S": at}
        items.append(item)
    for start in range(0, len(items), BATCH_WRITE_ITEMS):
        pending = {ledger.table_name: [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_ITEMS]]}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    # The hour's outcome counts, as the workers' tallies add them (a few writes a minute, whatever the files).
    counts, per_minute = counts_for(settings), count // 60 + 1
    for minute in range(60):
        counts.add(minute_of(now - timedelta(minutes=minute)), {name: n * per_minute for name, n in outcome("metadata", True, 5).items()})


def refresh_cost(settings: Settings, server: MotoServer, meter: Path) -> RefreshCost:
    """The requests (counted at the server) and DynamoDB read units of one dashboard refresh, as `dropq dashboard` ticks."""
    assert server.record_to is not None
    monitor = Monitor(local_deployment(settings))
    monitor.tick()  # connections and credentials are set up once, not per refresh
    before = len(read_meter(meter))
    server.reset_recording()
    monitor.tick()
    requests = recorded_actions(server.record_to)
    reads = [a for a in read_meter(meter)[before:] if a.kind == "read"]
    by_key: Counter[tuple[str, str | None, str]] = Counter()
    for access in reads:
        by_key[(access.table, access.index, access.key)] += access.units
    return RefreshCost(0, requests, sum(a.units for a in reads), max(by_key.values(), default=0.0))


def refresh_costs(settings: Settings, server: MotoServer, meter: Path, sizes: tuple[int, ...]) -> list[RefreshCost]:
    """A refresh's cost with the ledger holding each of `sizes` files (filled in turn)."""
    costs, filled = [], 0
    for size in sizes:
        fill_ledger(settings, size - filled, f"refresh-{size}")
        filled = size
        costs.append(dataclasses.replace(refresh_cost(settings, server, meter), files=size))
    return costs


def _rate(value: float) -> str:
    return "unbounded" if value == float("inf") else f"{value:,.0f}"


def load_table(phases: list[PhaseLoad]) -> str:
    """Per workload and family: units per file, keys, the hottest key's share, and what the family allows."""
    lines = [
        "| workload | table/index: keys | driven by | write units/file | read units/file | keys | hottest key's share in the run "
        "| busiest shard's share at 10,000 files/s | projected files/s, or the key's load |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for phase in phases:
        for load in phase.families:
            units = load.write_units + load.read_units
            share = f"{(load.hottest_write_units + load.hottest_read_units) / units:.1%}" if units else "-"
            at_scale = "-"
            if load.family.driver == FILES:
                limit, at_scale = _rate(phase.projected(load)), f"{phase.busiest_share:.2%}"
            elif load.family.driver in (WORKERS, PROCESSES):
                limit = f"{phase.at_production(load):,.1f} units/s at {PRODUCTION.pools[0].max_workers} workers"
            elif load.family.driver == FILE:
                limit = f"one file's: busiest second {load.peak_units_per_second:.0f} units"
            else:
                limit = f"per run, not per file ({load.requests} requests)"
            lines.append(
                f"| {phase.workload} | {load.family.label} | {load.family.driver} | {phase.writes_per_file(load):.2f} "
                f"| {phase.reads_per_file(load):.2f} | {load.keys} | {share} | {at_scale} | {limit} |"
            )
    return "\n".join(lines)


def refresh_table(costs: list[RefreshCost]) -> str:
    """Requests per refresh by service, and DynamoDB read units, for each ledger size."""
    services = sorted({service for cost in costs for service, _ in cost.requests})
    lines = [
        f"| files in the ledger | requests | {' | '.join(services)} | DynamoDB read units | busiest key's read units "
        f"| dashboards at one refresh per {REFRESH_SECONDS:.0f} s before a key passes {DYNAMODB_PARTITION_READS:,} read units/s "
        "| DynamoDB requests by action |",
        f"|---:|---:|{'---:|' * len(services)}---:|---:|---:|---|",
    ]
    for cost in costs:
        by_service = Counter()
        for (service, _), n in cost.requests.items():
            by_service[service] += n
        actions = ", ".join(f"{action} {n}" for (service, action), n in sorted(cost.requests.items()) if service == "dynamodb")
        cells = " | ".join(str(by_service[s]) for s in services)
        lines.append(
            f"| {cost.files:,} | {cost.total} | {cells} | {cost.dynamodb_read_units:.1f} | {cost.busiest_key_units:.1f} "
            f"| {_rate(cost.dashboards)} | {actions} |"
        )
    return "\n".join(lines)


def worker_cpu_seconds(phase: PhaseLoad) -> float:
    """CPU seconds per file of the pool processes that ran a phase's tasks (the pipeline and dropq's work in the task)."""
    return phase.worker_cpu_ms / phase.files / 1000

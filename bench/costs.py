"""What a million files cost: every AWS request of the real flow counted at the server, priced at list prices.

Each workload's files go through the local cloud (S3, the inbox events queue, the producer, SQS, a worker, the ledger)
with moto recording every request and metering every DynamoDB one (infra/local/meter.py). Per file, that gives:

- measured: S3 requests by kind, SQS requests (the producer's sends, the worker's receives, deletes and visibility
  changes), DynamoDB read and write units by table and index (item sizes as DynamoDB counts them), producer
  invocations, the worker's CPU (its main process and its pool's), log bytes, and the ledger item's size at rest;
- measured apart: the same files through the pipeline function in a plain loop (its CPU is the work itself), and the
  producer's duration per invocation (bench/producer.py);
- modelled: what Lambda's event source mapping asks of SQS (S3's notification is a SendMessage; a batch is one
  ReceiveMessage and one DeleteMessageBatch; locally the runtime polls more often than that, so its own requests on
  the inbox events queue are left out), Fargate's bill (a task's vCPU and memory for the seconds its CPU is busy at
  `UTILISATION`), Lambda's per-invocation log lines, storage until the ledger's TTL, and every price (infra/prices.py).

The peers are priced from the same measurements: an S3-triggered Lambda that runs the pipeline itself (an invocation
per file, billed for the loop's CPU seconds at the memory that gives one vCPU: a floor, since it also waits on S3), and
Celery on SQS as the tutorials configure it (bench/naive.py: its measured SQS requests and CPU per task, a producer
Lambda that sends one message per file, no ledger). S3's requests are the same for everyone and are shown apart.
"""

from __future__ import annotations

import io
import math
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aws_lambda_powertools import Logger
from botocore.config import Config

from bench import pipelines
from bench.latency import small_jpeg
from bench.outcomes import finished_at
from bench.producer import ProducerCost
from bench.throughput import Drain, cpu_ms
from dropq.ledger import ledger_for
from dropq.objects import ObjectRef
from dropq.observe import PRODUCER, WORKER, event_logger, log_event, log_outcome
from dropq.settings import Settings
from dropq.topology import TOPOLOGY, WorkerPool
from infra import prices
from infra.local.cloud import LocalCloud
from infra.local.meter import item_size, read_meter
from infra.local.server import recorded_requests
from tasks.tally import FLUSH_SECONDS

# The benchmark's own requests: waiting for outcomes (not dropq's), and the user's uploads (everyone pays them).
WATCHER_APP = "dropq-bench-watch"
UPLOADER_APP = "dropq-bench-upload"
# Where the S3 calls' CPU is measured (copies of the outputs), outside the inbox.
SCRATCH_PREFIX = "bench-s3-calls/"
SETTLE_SECONDS = 900
# Uploads at once: files arrive faster than the producer takes them, as under load.
UPLOADERS = 16
MILLION = 1_000_000

# --- modelled ------------------------------------------------------------------------------------------------------
# How busy a worker's vCPUs are while it has work (the rest is waiting on S3 and SQS, and scaling's slack).
UTILISATION = 0.8
# Lambda's memory for one full vCPU: "at 1,769 MB, a function has the equivalent of one vCPU"
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
LAMBDA_ONE_VCPU_MB = 1769
# Lambda's limits a Lambda-direct peer lives within: 15 minutes, 10,240 MB of memory, 10,240 MB of /tmp
# (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
LAMBDA_MAX_SECONDS = 900
LAMBDA_MAX_MEMORY_MB = 10_240
# Lambda bills duration in 1 ms steps (https://aws.amazon.com/lambda/pricing/), and writes START, END and REPORT lines
# to the function's log for every invocation (about 300 bytes together, as seen in CloudWatch).
LAMBDA_BILLING_MS = 1
LAMBDA_REPORT_BYTES = 300
# DynamoDB stores 100 bytes of overhead with every item and every index entry
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html).
DYNAMODB_ITEM_OVERHEAD_BYTES = 100
DAYS_PER_MONTH = 30.4
# Provisioned capacity's autoscaling keeps consumed units near its target utilisation, 70% by default ("the target
# utilization ... 70 percent", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/AutoScaling.Console.html):
# for steady traffic, a provisioned unit is paid for while 30% of it is slack.
PROVISIONED_UTILISATION = 0.7
# The producer's memory (infra/cloud/producer.py: MEMORY_MIB) and the workers' log retention (one month).
PRODUCER_MEMORY_GB = 256 / 1024
LOG_RETENTION_MONTHS = 1.0


@dataclass(frozen=True)
class CostWorkload:
    """Files of one kind for the cost model: their names and content, and the pipeline that processes them."""

    name: str
    pipeline: str
    files: Callable[[int], list[tuple[str, bytes]]]
    # Files of it in a full run and in a smoke run.
    full: int
    smoke: int


def _photos(width: int, height: int, prefix: str) -> Callable[[int], list[tuple[str, bytes]]]:
    return lambda n: [(f"{prefix}-{i:04d}.jpg", pipelines.photo(i, width, height)) for i in range(n)]


def cost_workloads(split_bytes: int) -> list[CostWorkload]:
    """Each built-in pipeline's typical file, and an image large enough to be split into parts (above `split_bytes`)."""
    jpeg = small_jpeg()
    return [
        CostWorkload("small image", "images", lambda n: [(f"small-{i:04d}.jpg", jpeg) for i in range(n)], 100, 2),
        CostWorkload("12 MP image", "images", _photos(4000, 3000, "photo"), 12, 1),
        CostWorkload("100k-row CSV", "tables", lambda n: [(f"table-{i:04d}.csv", pipelines.table(i)) for i in range(n)], 8, 1),
        CostWorkload("metadata", "metadata", lambda n: [(f"note-{i:04d}.txt", f"note {i}\n".encode()) for i in range(n)], 100, 2),
        CostWorkload("split image (parts in a chord)", "images", _split_photos(split_bytes), 4, 1),
    ]


def _split_photos(split_bytes: int) -> Callable[[int], list[tuple[str, bytes]]]:
    def files(n: int) -> list[tuple[str, bytes]]:
        made = []
        for i in range(n):
            data = pipelines.photo(1000 + i, 7000, 5000)
            assert len(data) >= split_bytes, f"a split image must be over {split_bytes} bytes, is {len(data)}"
            made.append((f"split-{i:04d}.jpg", data))
        return made

    return files


def _lines(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.exists() else 0


def _log_bytes(state_dir: Path) -> dict[str, int]:
    """Bytes of the producer's and the workers' logs (what CloudWatch Logs would ingest)."""
    return {p.name: p.stat().st_size for p in state_dir.glob("*.log") if p.name in ("lambda.log",) or p.name.startswith("worker-")}


def _invocations(lambda_log: Path, start: int) -> int:
    """Producer invocations from line `start` of the local runtime's log: one `handled` line each."""
    with lambda_log.open() as lines:
        return sum(1 for number, line in enumerate(lines) if number >= start and '"message":"handled"' in line)


@dataclass
class FileCosts:
    """What one workload's files cost, measured, in total over `files` files."""

    workload: str
    pipeline: str
    files: int
    input_bytes: int
    requests: Counter[tuple[str, str]]
    write_units: dict[str, float]
    read_units: dict[str, float]
    invocations: int
    worker_cpu_ms: float
    loop_cpu_ms: float
    loop_seconds: float
    log_bytes: int
    # Bytes DynamoDB stores for one file's ledger entry at rest, with its index entries (overheads included).
    stored_bytes: float
    uploads: int = 0
    # CPU of the S3 calls processing the files makes wherever it runs (the input's GET, each output's PUT), made
    # plainly with boto3: part of the worker's CPU outside the pipeline that a Lambda doing the work spends too.
    s3_cpu_ms: float = 0.0

    def per_file(self, service: str, actions: tuple[str, ...] | None = None) -> float:
        return sum(n for (s, a), n in self.requests.items() if s == service and (actions is None or a in actions)) / self.files


def _worker_pids(cloud: LocalCloud) -> list[int]:
    pids = []
    for workers in cloud.pools:
        for process in workers.processes.values():
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
            pids += [process.pid, *([int(c) for c in children.read_text().split()] if children.exists() else [])]
    return pids


def _s3_calls_cpu_ms(settings: Settings, pipeline: str, keys: list[str]) -> float:
    """CPU ms, in this thread, of the files' S3 calls made plainly: each input's GET, and a PUT of each of its outputs
    (to a copy below SCRATCH_PREFIX, outside the inbox, so nothing is triggered)."""
    s3 = settings.client("s3", config=Config(user_agent_appid=WATCHER_APP))
    bucket, topology = settings.bucket, settings.topology
    spent = 0.0
    for key in keys:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=topology.output_folder(pipeline, key)).get("Contents", [])
        outputs = [(o["Key"], s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()) for o in listed]
        started = time.thread_time()
        s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for output, body in outputs:
            s3.put_object(Bucket=bucket, Key=f"{SCRATCH_PREFIX}{output}", Body=body)
        spent += time.thread_time() - started
    return spent * 1000


def _stored_bytes(settings: Settings, bucket: str, keys: list[str]) -> float:
    """Mean bytes at rest of the files' ledger entries, with each index entry the entry still has (KEYS_ONLY: its keys)."""
    client, spec = settings.client("dynamodb"), settings.topology.ledger_table
    table = settings.physical_name(spec.name)
    ledger = ledger_for(settings)
    total = 0.0
    for key in keys:
        entry = ledger.get(bucket, key) or {}
        item_key = {spec.partition_key: {"S": entry[spec.partition_key]}}
        if spec.sort_key:
            item_key[spec.sort_key] = {"S": entry[spec.sort_key]}
        item = client.get_item(TableName=table, Key=item_key, ConsistentRead=True)["Item"]
        total += item_size(item) + DYNAMODB_ITEM_OVERHEAD_BYTES
        for index in spec.indexes:
            if index.partition_key in item and index.sort_key in item:
                projected = {k: v for k, v in item.items() if k in (*item_key, index.partition_key, index.sort_key)}
                total += item_size(projected) + DYNAMODB_ITEM_OVERHEAD_BYTES
    return total / len(keys)


def measure(cloud: LocalCloud, workload: CostWorkload, count: int, run: str, counted: bool = True) -> FileCosts:
    """Drop `count` files of a workload in the inbox at once; count what serving them cost at the server (with the
    outcome counts the workers add a few seconds later, unless not `counted`)."""
    assert cloud.recording is not None and cloud.metering is not None, "the cloud must record and meter (record=True, meter=True)"
    settings = cloud.settings
    state = Path(settings.state_dir)
    uploader = settings.client("s3", config=Config(user_agent_appid=UPLOADER_APP))
    watcher = ledger_for(settings, client=settings.client("dynamodb", config=Config(user_agent_appid=WATCHER_APP)))
    files = workload.files(count)
    bucket, prefix = settings.bucket, f"{settings.topology.inbox_prefix}{run}/"
    keys = [prefix + name for name, _ in files]
    pids = _worker_pids(cloud)
    recorded, metered = _lines(cloud.recording), len(read_meter(cloud.metering))
    handled, logs = _lines(state / "lambda.log"), _log_bytes(state)
    cpu = sum(cpu_ms(pid) for pid in pids)
    # Uploaded side by side, as files arrive under load: the producer's batches fill as they would.
    with ThreadPoolExecutor(UPLOADERS) as uploads:
        list(uploads.map(lambda item: uploader.put_object(Bucket=bucket, Key=item[0], Body=item[1][1]), zip(keys, files, strict=True)))
    finished_at(watcher, bucket, keys, SETTLE_SECONDS, workload.name)
    worker_cpu = sum(cpu_ms(pid) for pid in pids) - cpu  # before the wait below, which is idle time
    if counted:
        time.sleep(FLUSH_SECONDS + 1)  # the outcome counts of the last files are added
    inbox = settings.queue_url(settings.topology.inbox_events.queue)
    requests = [
        r for r in recorded_requests(cloud.recording, recorded) if r.app not in (WATCHER_APP, UPLOADER_APP) and r.queue_url != inbox
    ]
    uploads = sum(1 for r in recorded_requests(cloud.recording, recorded) if r.app == UPLOADER_APP)
    writes: dict[str, float] = defaultdict(float)
    reads: dict[str, float] = defaultdict(float)
    for access in read_meter(cloud.metering)[metered:]:
        if access.client == WATCHER_APP:
            continue
        label = f"{access.table}/{access.index}" if access.index else access.table
        (writes if access.kind == "write" else reads)[label] += access.units
    log_bytes = sum(size - logs.get(name, 0) for name, size in _log_bytes(state).items())
    loop_seconds, loop_cpu = pipelines.plain_loop(workload.pipeline, files, 1)
    s3_cpu = _s3_calls_cpu_ms(settings, workload.pipeline, keys)
    return FileCosts(
        workload=workload.name,
        pipeline=workload.pipeline,
        files=count,
        input_bytes=sum(len(data) for _, data in files),
        requests=Counter((r.service, r.action) for r in requests),
        write_units=dict(writes),
        read_units=dict(reads),
        invocations=_invocations(state / "lambda.log", handled),
        worker_cpu_ms=worker_cpu,
        loop_cpu_ms=loop_cpu,
        loop_seconds=loop_seconds,
        log_bytes=log_bytes,
        stored_bytes=_stored_bytes(settings, bucket, keys),
        uploads=uploads,
        s3_cpu_ms=s3_cpu,
    )


def measure_all(cloud: LocalCloud, smoke: bool) -> list[FileCosts]:
    """Each cost workload, after a warm-up that pays the worker processes' imports and clients."""
    measured = []
    for workload in cost_workloads(cloud.settings.image_split_bytes):
        count = workload.smoke if smoke else workload.full
        if not smoke:  # a smoke run's figures are not judged
            warm = [(f"warm-{uuid.uuid4().hex[:6]}-{name}", data) for name, data in workload.files(1)]
            warmup = CostWorkload(workload.name, workload.pipeline, lambda n, warm=warm: warm, 1, 1)
            measure(cloud, warmup, 1, f"cost-warmup-{uuid.uuid4().hex[:6]}", counted=False)
        measured.append(measure(cloud, workload, count, f"cost-{workload.pipeline}-{uuid.uuid4().hex[:6]}", counted=not smoke))
    return measured


# --- the model -----------------------------------------------------------------------------------------------------

S3_GETS = ("GET", "HEAD")
S3_PUTS = ("PUT", "POST")
SQS = "SQS"
DYNAMODB = "DynamoDB"
LAMBDA = "Lambda"
FARGATE = "Fargate"
LOGS = "CloudWatch Logs"
STORAGE = "DynamoDB storage"
S3 = "S3 requests"


@dataclass(frozen=True)
class Compute:
    """Where workers run: an architecture and on demand or Spot."""

    name: str
    price: prices.FargatePrice
    spot: bool

    def usd_per_cpu_second(self, pool: WorkerPool) -> float:
        """USD per second of one vCPU's work, with the task's memory, at UTILISATION."""
        vcpus, memory_gb = pool.cpu / 1024, pool.memory_mib / 1024
        return self.price.per_second(vcpus, memory_gb, spot=self.spot) / (vcpus * UTILISATION)


# Fargate Spot runs x86_64 tasks only ("FARGATE_SPOT only supports Linux tasks with the X86_64 architecture",
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CapacityProviderStrategyItem.html): no ARM on Spot.
COMPUTES = (
    Compute("x86, on demand", prices.FARGATE_X86, spot=False),
    Compute("x86, Spot", prices.FARGATE_X86, spot=True),
    Compute("ARM, on demand", prices.FARGATE_ARM64, spot=False),
)


@dataclass
class Bill:
    """USD per million files, by service, and what it counted (units per file, for the table's notes)."""

    usd: dict[str, float] = field(default_factory=dict)
    # USD of the pipeline's own work (its CPU), inside the compute line (Fargate, or Lambda for the Lambda peer).
    work_usd: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(self.usd.values())

    @property
    def without_s3(self) -> float:
        return self.total - self.usd.get(S3, 0.0)

    @property
    def fixed_overhead(self) -> float:
        """Everything but the pipeline's CPU and S3's requests: queues, ledger, producer, the worker's own CPU."""
        return self.without_s3 - self.work_usd


def s3_usd(costs: FileCosts) -> float:
    gets, puts = costs.per_file("s3", S3_GETS), costs.per_file("s3", S3_PUTS)
    return (gets * prices.S3.get_thousand + puts * prices.S3.put_thousand) / 1000 * MILLION


def ledger_units(units: dict[str, float]) -> float:
    """The units of `units` (by table and index label, e.g. dropq-ledger/recent) that fall on the ledger table and its indexes."""
    return sum(u for label, u in units.items() if label.split("/")[0].endswith(TOPOLOGY.ledger_table.name))


def storage_usd(bytes_per_file: float, days: float) -> float:
    """The ledger's storage per million files of `bytes_per_file` at rest, each kept `days` (its TTL)."""
    return bytes_per_file / prices.GIB * days / DAYS_PER_MONTH * prices.DYNAMODB.storage_gb_month * MILLION


def logs_usd(bytes_per_file: float) -> float:
    """CloudWatch Logs per million files of `bytes_per_file`: ingested, then kept for LOG_RETENTION_MONTHS."""
    return bytes_per_file / 1e9 * (prices.LOGS.ingest_gb + prices.LOGS.storage_gb_month * LOG_RETENTION_MONTHS) * MILLION


def loop_cpu_seconds(costs: FileCosts) -> float:
    return costs.loop_cpu_ms / costs.files / 1000


def worker_overhead_ms(costs: FileCosts) -> float:
    """Worker CPU per file outside the pipeline function: the worker's CPU minus the plain loop's, same files."""
    return max(0.0, (costs.worker_cpu_ms - costs.loop_cpu_ms) / costs.files)


def producer_gb_seconds(producer: ProducerCost) -> float:
    """GB-seconds of one producer invocation, as measured in process, rounded up to Lambda's step."""
    ms = producer.per_event / producer.records_per_second * 1000
    return math.ceil(ms / LAMBDA_BILLING_MS) * LAMBDA_BILLING_MS / 1000 * PRODUCER_MEMORY_GB


def producer_usd_per_file(producer: ProducerCost, invocations: float) -> float:
    """The producer's Lambda bill per file: `invocations` requests, and the measured duration of one file's share of a
    batch (a batch's duration is mostly its sends: it writes nothing to the ledger)."""
    gb_seconds = producer_gb_seconds(producer) / producer.per_event
    return invocations * prices.LAMBDA.request_million / MILLION + gb_seconds * prices.LAMBDA.arm64_gb_second


def dropq_bill(
    costs: FileCosts, producer: ProducerCost, pool: WorkerPool, compute: Compute, ledger_ttl_days: int, provisioned: bool = False
) -> Bill:
    """dropq's cost per million files of one workload; `provisioned`: its tables on provisioned capacity (steady traffic)."""
    bill = Bill()
    invocations = costs.invocations / costs.files
    # Measured: the producer's sends and the workers' calls. Modelled: S3's notification (a SendMessage) and the event
    # source mapping's receive and delete per batch.
    sqs_requests = costs.per_file("sqs") + 1 + 2 * invocations
    bill.usd[SQS] = sqs_requests * prices.SQS.standard_million
    write_units, read_units = sum(costs.write_units.values()) / costs.files, sum(costs.read_units.values()) / costs.files
    bill.usd[DYNAMODB] = write_units * prices.DYNAMODB.write_million + read_units * prices.DYNAMODB.read_million
    if provisioned:
        # Only the ledger (the topology's `ledger_provisioned`); chord parts' results stay on demand.
        ledger_writes, ledger_reads = ledger_units(costs.write_units) / costs.files, ledger_units(costs.read_units) / costs.files
        bill.usd[DYNAMODB] += ledger_writes * (
            prices.DYNAMODB_PROVISIONED.write_million(PROVISIONED_UTILISATION) - prices.DYNAMODB.write_million
        )
        bill.usd[DYNAMODB] += ledger_reads * (
            prices.DYNAMODB_PROVISIONED.read_million(PROVISIONED_UTILISATION) - prices.DYNAMODB.read_million
        )
    bill.usd[STORAGE] = storage_usd(costs.stored_bytes, ledger_ttl_days)
    bill.usd[LAMBDA] = producer_usd_per_file(producer, invocations) * MILLION
    cpu_seconds = costs.worker_cpu_ms / costs.files / 1000
    per_cpu_second = compute.usd_per_cpu_second(pool)
    bill.usd[FARGATE] = cpu_seconds * per_cpu_second * MILLION
    bill.work_usd = min(cpu_seconds, loop_cpu_seconds(costs)) * per_cpu_second * MILLION
    log_bytes = costs.log_bytes / costs.files + invocations * LAMBDA_REPORT_BYTES
    bill.usd[LOGS] = logs_usd(log_bytes)
    bill.usd[S3] = s3_usd(costs)
    bill.notes = [
        f"SQS {sqs_requests:.2f} requests/file",
        f"DynamoDB {write_units:.2f} WRU + {read_units:.2f} RRU/file",
        f"producer {invocations:.2f} invocations/file",
        f"worker CPU {cpu_seconds * 1000:.1f} ms/file",
    ]
    return bill


def lambda_direct_bill(costs: FileCosts) -> Bill:
    """An S3-triggered Lambda doing the work itself: an invocation per file, the loop's CPU at one vCPU (arm64)."""
    bill = Bill()
    seconds = loop_cpu_seconds(costs)
    billed = math.ceil(seconds * 1000 / LAMBDA_BILLING_MS) * LAMBDA_BILLING_MS / 1000
    gb_seconds = billed * LAMBDA_ONE_VCPU_MB / 1024
    bill.usd[LAMBDA] = prices.LAMBDA.request_million + gb_seconds * prices.LAMBDA.arm64_gb_second * MILLION
    bill.work_usd = bill.usd[LAMBDA] - prices.LAMBDA.request_million
    bill.usd[LOGS] = logs_usd(LAMBDA_REPORT_BYTES)
    bill.usd[S3] = s3_usd(costs)
    if costs.loop_seconds / costs.files > LAMBDA_MAX_SECONDS:
        bill.notes.append(f"a file takes over Lambda's {LAMBDA_MAX_SECONDS} s")
    return bill


def naive_bill(costs: FileCosts, naive: Drain, single: ProducerCost, pool: WorkerPool, compute: Compute) -> Bill:
    """Celery on SQS as the tutorials set it up: a producer Lambda sending a message per file, workers with default
    options (their measured requests and CPU per no-op task on top of the work), no ledger."""
    bill = Bill()
    bill.usd[SQS] = (naive.requests_per_task + 1) * prices.SQS.standard_million
    bill.usd[LAMBDA] = prices.LAMBDA.request_million + producer_gb_seconds(single) * prices.LAMBDA.arm64_gb_second * MILLION
    cpu_seconds = loop_cpu_seconds(costs) + naive.cpu_ms_per_task / 1000
    per_cpu_second = compute.usd_per_cpu_second(pool)
    bill.usd[FARGATE] = cpu_seconds * per_cpu_second * MILLION
    bill.work_usd = loop_cpu_seconds(costs) * per_cpu_second * MILLION
    bill.usd[S3] = s3_usd(costs)
    return bill


# --- the report ----------------------------------------------------------------------------------------------------


def _usd(value: float) -> str:
    return f"{value:,.2f}" if value >= 0.995 else f"{value:.3f}"


@dataclass(frozen=True)
class Comparison:
    """One workload's bills: dropq's, and each peer's."""

    costs: FileCosts
    dropq: Bill
    lambda_direct: Bill
    naive: Bill

    @property
    def vs_lambda(self) -> float:
        return self.dropq.without_s3 / self.lambda_direct.without_s3

    @property
    def vs_naive(self) -> float:
        return self.dropq.without_s3 / self.naive.without_s3


def compare(
    measured: list[FileCosts], producer: ProducerCost, single: ProducerCost, naive: Drain, pool: WorkerPool, compute: Compute, ttl_days: int
) -> list[Comparison]:
    return [
        Comparison(c, dropq_bill(c, producer, pool, compute, ttl_days), lambda_direct_bill(c), naive_bill(c, naive, single, pool, compute))
        for c in measured
    ]


BILL_LINES = (SQS, DYNAMODB, STORAGE, LAMBDA, FARGATE, LOGS)


def bill_table(comparisons: list[Comparison]) -> str:
    """dropq's bill per million files by service, beside each peer's, S3 apart."""
    lines = [
        "| workload | " + " | ".join(BILL_LINES) + " | **dropq** | Lambda-direct | dropq / Lambda | Celery as in tutorials "
        "| dropq / tutorials | S3 requests (everyone's) |",
        "|---|" + "---:|" * (len(BILL_LINES) + 6),
    ]
    for c in comparisons:
        cells = " | ".join(_usd(c.dropq.usd.get(line, 0.0)) for line in BILL_LINES)
        lines.append(
            f"| {c.costs.workload} | {cells} | **{_usd(c.dropq.without_s3)}** | {_usd(c.lambda_direct.without_s3)} | {c.vs_lambda:.2f} "
            f"| {_usd(c.naive.without_s3)} | {c.vs_naive:.2f} | {_usd(c.dropq.usd[S3])} |"
        )
    return "\n".join(lines)


def counts_table(measured: list[FileCosts]) -> str:
    """What the bill counted, per file."""
    lines = [
        "| workload | files | input KB | S3 GET/HEAD | S3 PUT | SQS (measured) | invocations | DynamoDB WRU | DynamoDB RRU "
        "| stored bytes | worker CPU ms | pipeline (loop) CPU ms | worker CPU outside the pipeline, ms "
        "| of which S3 calls, ms | log bytes |",
        "|---|" + "---:|" * 14,
    ]
    for c in measured:
        lines.append(
            f"| {c.workload} | {c.files} | {c.input_bytes / c.files / 1024:,.0f} | {c.per_file('s3', S3_GETS):.2f} "
            f"| {c.per_file('s3', S3_PUTS):.2f} | {c.per_file('sqs'):.2f} | {c.invocations / c.files:.2f} "
            f"| {sum(c.write_units.values()) / c.files:.2f} | {sum(c.read_units.values()) / c.files:.2f} | {c.stored_bytes:,.0f} "
            f"| {c.worker_cpu_ms / c.files:,.1f} | {c.loop_cpu_ms / c.files:,.1f} | {worker_overhead_ms(c):.1f} "
            f"| {c.s3_cpu_ms / c.files:.1f} | {c.log_bytes / c.files:,.0f} |"
        )
    return "\n".join(lines)


def compute_table(measured: list[FileCosts], producer: ProducerCost, pool: WorkerPool, ttl_days: int, default: Compute) -> str:
    """dropq's total per million files (S3 apart) on each kind of Fargate capacity, then on the default one with the
    tables on provisioned capacity, its fixed overhead, and the ratio to Lambda-direct."""
    steady = f"{default.name}, tables provisioned"
    header = [c.name for c in COMPUTES] + [steady, "its fixed overhead", "its ratio to Lambda-direct"]
    lines = ["| workload | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    for c in measured:
        cells = [_usd(dropq_bill(c, producer, pool, compute, ttl_days).without_s3) for compute in COMPUTES]
        provisioned = dropq_bill(c, producer, pool, default, ttl_days, provisioned=True)
        ratio = provisioned.without_s3 / lambda_direct_bill(c).without_s3
        cells += [_usd(provisioned.without_s3), _usd(provisioned.fixed_overhead), f"{ratio:.2f}"]
        lines.append(f"| {c.workload} | {' | '.join(cells)} |")
    return "\n".join(lines)


# Log bytes before each line carried each fact once (dropq/observe.py), from `make bench` at commit 4970eed
# (BENCHMARKS.md, 2026-12-07): a worker's outcome line for the sample file below, the producer's `enqueued` line
# it logged for every file at INFO, and the logs of a small image end to end (producer and worker, measured).
OUTCOME_LINE_BYTES_BEFORE = 810
# How long a succeeded file's entry was kept before its TTL followed what it is kept for (dropq/topology.py), and its
# bytes at rest (with its index entries) before it stored no NULLs, no lease owner once ended, and its bucket and key
# only in its partition key, from the same `make bench` (a small image's).
LEDGER_TTL_DAYS_BEFORE = 90
STORED_BYTES_PER_SMALL_IMAGE_BEFORE = 1_229
ENQUEUED_LINE_BYTES_BEFORE = 413
LOG_BYTES_PER_SMALL_IMAGE_BEFORE = 1_296
# The ledger's write units per small image before the producer stopped writing a `queued` entry (and the `open` index
# went), measured at the server by the partition load of `make bench` at commit c0ac9fe (BENCHMARKS.md, 2026-12-07).
WRITE_UNITS_PER_SMALL_IMAGE_BEFORE = 6.05
# A succeeded small image's entry at rest, with its index entries, before its outputs were stored by their names below
# its output folder, from the same `make bench` at commit c0ac9fe.
STORED_BYTES_WITH_WHOLE_OUTPUTS = 1_099


def sample_log_bytes() -> tuple[int, int]:
    """The bytes a worker and the producer log for one succeeded file of the sample, through their own loggers: the
    worker's outcome line (`started` is at DEBUG) and the producer's lines for it (its `enqueued` is at DEBUG)."""
    ref = ObjectRef("dropq-local", "incoming/photos/2026/IMG_0001.jpg", "0123456789abcdef0123456789abcdef", 123_456)
    task_id = str(uuid.uuid4())

    def written(service: str, log: Callable[[Logger], None]) -> int:
        stream = io.StringIO()
        log(event_logger(f"{service}-{uuid.uuid4().hex[:6]}", stream))
        return len(stream.getvalue().replace(f"{service}-", service, 1).encode())

    def worker(logger: Logger) -> None:
        log_event(logger, "started", ref=ref, task_id=task_id, state="running", level="debug", pipeline="images", attempt=1)
        log_outcome(logger, "dropq", ref, task_id, "images", succeeded=True, duration_ms=120, outputs=3)

    def producer(logger: Logger) -> None:
        log_event(logger, "enqueued", ref=ref, task_id=task_id, state="queued", level="debug", pipeline="images", queue="default")

    return written(WORKER, worker), written(PRODUCER, producer)


def where_the_money_goes(costs: FileCosts) -> str:
    """A workload's DynamoDB write units per file, by table and index."""
    return ", ".join(f"{label} {units / costs.files:.2f}" for label, units in sorted(costs.write_units.items()))


# --- the hot path, justified ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HotPathRequest:
    """One request the flow makes for every file: who makes it, what it writes, and the guarantee that needs it."""

    step: str
    who: str
    request: str
    table_units: float
    index_units: float
    guarantee: str


# What a file of a few seconds costs the ledger, request by request (dropq/ledger.py); the measured totals per file
# (the partition load and the counts above) must add up to these. Files longer than the lease add one renewal (a write
# of `lease_until` alone, on the table) every LEASE_SECONDS / 3 after the first.
HOT_PATH = (
    HotPathRequest(
        "claimed",
        "worker",
        "UpdateItem, conditional (creates the entry)",
        1,
        1,
        "at most one attempt runs at once (a lease), and attempts are counted, so a file that keeps failing stops with a "
        "reason instead of looping; a repeated S3 event of a file running or ended is caught here (the producer writes "
        "nothing); the file enters `recent`, where people find it",
    ),
    HotPathRequest(
        "recorded",
        "worker",
        "UpdateItem, conditional on the lease",
        1,
        0,
        "the outcome is written once (completed twice = 0), with its outputs and reason",
    ),
    HotPathRequest(
        "counted",
        "worker process",
        "UpdateItem ADD, every 5 s",
        0,
        0,
        "throughput and failure rate per minute for the dashboard and the daily report at a bounded cost (amortised: "
        "one write per process per 5 s, whatever the rate)",
    ),
    HotPathRequest(
        "alive",
        "worker",
        "PutItem, every 15 s",
        0,
        0,
        "status and the dashboard show live workers (amortised: one write per worker per 15 s)",
    ),
)
# What the flow no longer does for a plain file: a Celery result (GetItem + PutItem on the results table; only the
# parts of a split file, which their chord reads, store one), and a producer invocation and SendMessageBatch per file.
REMOVED = (
    "a Celery result per task (a GetItem and a PutItem on the results table): only chord parts store one",
    "a producer invocation and a SendMessageBatch per file: the inbox events queue brings ten at a time",
    "the producer's `queued` entry (the entry, `recent` and `open`: 3 write units) and the `open` index it fed (leaving it "
    "at the outcome: 1 more): a file's claim creates its entry, a repeated event is caught at the claim, and a message "
    "that expired or was dead-lettered is found by the queue-age and dead-letter alarms and a backfill, not a sweep",
)


def hot_path_table() -> str:
    lines = [
        "| step | who | request | table write units | index write units | the guarantee that needs it |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in HOT_PATH:
        units = (f"{r.table_units:g}", f"{r.index_units:g}") if r.table_units or r.index_units else ("~0", "0")
        lines.append(f"| {r.step} | {r.who} | {r.request} | {units[0]} | {units[1]} | {r.guarantee} |")
    table, index = sum(r.table_units for r in HOT_PATH), sum(r.index_units for r in HOT_PATH)
    lines.append(f"| **a file** | | | **{table:g}** | **{index:g}** | |")
    return "\n".join(lines)


def hot_path_units() -> float:
    """Write units per file the hot path adds up to (the timers' amortised writes left out)."""
    return sum(r.table_units + r.index_units for r in HOT_PATH)

"""The one source of truth for dropq's shape: bucket, prefixes, queues, tables, routes and pools.

The local cloud, the Celery settings, the producer and the CDK stack all read `TOPOLOGY`;
nothing here may import anything beyond the standard library, because the producer's
Lambda bundle carries this module.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from dataclasses import dataclass, field
from typing import NamedTuple

# SQS quotas: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-queues.html
# A message stays invisible at most 12 hours after it was received, however often its timeout is extended.
SQS_MAX_VISIBILITY_TIMEOUT = 12 * 60 * 60
# Workers extend the visibility of the messages they hold every third of the timeout (tasks/keeper.py).
MIN_VISIBILITY_TIMEOUT = 30
SQS_MIN_RETENTION = 60
SQS_MAX_RETENTION = 14 * 24 * 60 * 60
# Long polling: a receive waits up to this long for a message (SQS's maximum).
SQS_MAX_WAIT_SECONDS = 20
# A worker's receive hides what it brings this long only (ReceiveMessage's VisibilityTimeout), not its queue's visibility
# timeout: a stopping worker cuts its open long poll, and a message SQS hands to that poll is visible again this soon.
# The worker extends what it keeps within seconds (tasks/broker/visibility.py, tasks/keeper.py).
RECEIVE_VISIBILITY_SECONDS = 10
# A message can be delayed (DelaySeconds) at most 15 minutes.
SQS_MAX_DELAY_SECONDS = 15 * 60
# ReceiveMessage and every *Batch call take at most 10 messages.
SQS_MAX_BATCH = 10
SQS_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
# Lambda's SQS event source mapping: a standard queue's largest batch, the longest batching window, and the visibility
# timeout it asks of the queue, in function timeouts: https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html,
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
LAMBDA_SQS_MAX_BATCH = 10_000
LAMBDA_MAX_BATCHING_WINDOW = 300
LAMBDA_SQS_VISIBILITY_FACTOR = 6
# The CPU architectures Fargate runs Linux tasks on; Spot runs the first only:
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CapacityProviderStrategyItem.html
X86_64, ARM64 = "x86_64", "arm64"
ARCHITECTURES = (X86_64, ARM64)
# Redrive policy bounds: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html
SQS_MAX_RECEIVE_COUNT = (1, 1000)
# Bucket naming rules: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
S3_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Fargate task sizes (CPU units -> the memory sizes in MiB allowed with them) and stop timeout:
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
FARGATE_MEMORY_MIB = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
FARGATE_MAX_STOP_TIMEOUT = 120
# Seconds a stopping worker keeps for requeueing unfinished messages and exiting before SIGKILL.
SHUTDOWN_MARGIN = 15
POOL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,20}$")
# DynamoDB table names: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html
DYNAMODB_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
# What one partition key value of a table or index serves at most, per second, however the table is billed:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html
DYNAMODB_PARTITION_WRITES = 1000
DYNAMODB_PARTITION_READS = 3000
# Readers query every shard of a sharded key; beyond this many, a status refresh would be mostly queries.
MAX_SHARDS = 256
# What an on-demand table, or any one of its indexes, may take per second by default (read and write units each):
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html
DYNAMODB_TABLE_MAX_UNITS = 40_000


class TopologyError(ValueError):
    """A topology field breaks one of its bounds."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise TopologyError(message)


@dataclass(frozen=True)
class QueueSpec:
    """An SQS queue that workers consume, with its dead-letter queue.

    The visibility timeout is short on purpose: a worker keeps the messages it holds invisible by
    extending them while it runs (tasks/keeper.py), so a task may run up to `task_time_limit`, and a
    crashed worker's messages come back within `visibility_timeout` seconds.
    """

    name: str
    task_time_limit: int = 300
    visibility_timeout: int = 60
    max_receive_count: int = 5
    retention_seconds: int = 4 * 24 * 60 * 60
    dlq_retention_seconds: int = 14 * 24 * 60 * 60

    def __post_init__(self) -> None:
        _check(bool(SQS_QUEUE_NAME.match(self.name)), f"queue name {self.name!r} must match {SQS_QUEUE_NAME.pattern}")
        _check(
            MIN_VISIBILITY_TIMEOUT <= self.visibility_timeout <= SQS_MAX_VISIBILITY_TIMEOUT,
            f"queue {self.name}: visibility_timeout {self.visibility_timeout}s is outside "
            f"{MIN_VISIBILITY_TIMEOUT}..{SQS_MAX_VISIBILITY_TIMEOUT}s",
        )
        _check(
            0 < self.task_time_limit < SQS_MAX_VISIBILITY_TIMEOUT - self.visibility_timeout,
            f"queue {self.name}: task_time_limit {self.task_time_limit}s must be below "
            f"{SQS_MAX_VISIBILITY_TIMEOUT - self.visibility_timeout}s: "
            "SQS keeps a message invisible at most 12 hours after it was received",
        )
        low, high = SQS_MAX_RECEIVE_COUNT
        _check(
            low <= self.max_receive_count <= high,
            f"queue {self.name}: max_receive_count {self.max_receive_count} is outside SQS's range {low}..{high}",
        )
        for label, seconds in (("retention_seconds", self.retention_seconds), ("dlq_retention_seconds", self.dlq_retention_seconds)):
            _check(
                SQS_MIN_RETENTION <= seconds <= SQS_MAX_RETENTION,
                f"queue {self.name}: {label} {seconds} is outside SQS's range {SQS_MIN_RETENTION}..{SQS_MAX_RETENTION}",
            )
        _check(
            self.dlq_retention_seconds > self.retention_seconds,
            f"queue {self.name}: dlq_retention_seconds ({self.dlq_retention_seconds}) must exceed retention_seconds "
            f"({self.retention_seconds}), or a message can expire in the DLQ before anyone sees it",
        )

    @property
    def extend_every(self) -> int:
        """Seconds between a worker's extensions of the visibility of the messages it holds."""
        return self.visibility_timeout // 3

    @property
    def dlq_name(self) -> str:
        """The name of this queue's dead-letter queue."""
        return f"{self.name}-dlq"


def _glob(pattern: str, relative_key: str) -> bool:
    return fnmatch.fnmatchcase(relative_key.lower(), pattern.lower())


@dataclass(frozen=True)
class Route:
    """Send keys matching `pattern` (a case-insensitive glob, relative to the inbox) to a pipeline."""

    pattern: str
    pipeline: str

    def matches(self, relative_key: str) -> bool:
        """Whether a key below the inbox prefix matches this route."""
        return _glob(self.pattern, relative_key)


@dataclass(frozen=True)
class QueueRule:
    """Put some files on `queue` rather than the default one: those whose key (relative to the inbox) matches
    `pattern`, whose pipeline is one of `pipelines` (any, when empty), and which have at least `min_bytes`."""

    queue: str
    pattern: str = "*"
    pipelines: tuple[str, ...] = ()
    min_bytes: int = 0

    def __post_init__(self) -> None:
        _check(self.min_bytes >= 0, f"queue rule for {self.queue}: min_bytes {self.min_bytes} must be at least 0")

    def matches(self, relative_key: str, pipeline: str, size: int) -> bool:
        """Whether a file goes to this rule's queue."""
        return size >= self.min_bytes and (not self.pipelines or pipeline in self.pipelines) and _glob(self.pattern, relative_key)


class Placement(NamedTuple):
    """Where one file goes: the pipeline that processes it and the queue its task waits in."""

    pipeline: str
    queue: str


RATE_EXPRESSION = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
CRON_EXPRESSION = re.compile(r"^cron\((.+)\)$")
SCHEDULE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


@dataclass(frozen=True)
class Schedule:
    """A periodic task: the Celery task `task`, sent to `queue` (the first queue if None) at the times of `expression`.

    `expression` is EventBridge Scheduler's, in UTC: `rate(10 minutes)` or `cron(minutes hours day-of-month
    month day-of-week year)`. The stack deploys it as a schedule; `dropq up` fires it locally at the same times.
    """

    name: str
    expression: str
    task: str
    queue: str | None = None

    def __post_init__(self) -> None:
        _check(bool(SCHEDULE_NAME.match(self.name)), f"schedule name {self.name!r} must match {SCHEDULE_NAME.pattern}")
        rate, cron = RATE_EXPRESSION.match(self.expression), CRON_EXPRESSION.match(self.expression)
        _check(
            bool(rate or cron),
            f"schedule {self.name}: {self.expression!r} is neither a rate like 'rate(10 minutes)' nor a cron like 'cron(5 0 * * ? *)'",
        )
        if rate:
            value, unit = int(rate.group(1)), rate.group(2)
            _check(value >= 1, f"schedule {self.name}: a rate of {value} must be at least 1")
            _check(
                unit.endswith("s") == (value != 1),
                f"schedule {self.name}: EventBridge wants 'rate(1 {unit.rstrip('s')})' or 'rate({value} {unit.rstrip('s')}s)'",
            )
        if cron:
            fields = cron.group(1).split()
            _check(len(fields) == 6, f"schedule {self.name}: a cron expression has six fields (minutes ... year), not {len(fields)}")
            _check(fields[5] == "*", f"schedule {self.name}: the year field must be '*' (a schedule that stops is not supported)")

    @property
    def rate_seconds(self) -> int | None:
        """The period of a rate expression, in seconds (None for a cron)."""
        rate = RATE_EXPRESSION.match(self.expression)
        return int(rate.group(1)) * RATE_UNITS[rate.group(2).rstrip("s")] if rate else None

    @property
    def cron(self) -> str | None:
        """A cron expression as classic five-field cron reads it (days of the week 0-6 from Sunday), or None."""
        cron = CRON_EXPRESSION.match(self.expression)
        if not cron:
            return None
        minutes, hours, day_of_month, month, day_of_week, _year = cron.group(1).split()
        # EventBridge numbers days of the week 1-7 from Sunday and writes '?' for "any".
        day_of_week = re.sub(r"\d", lambda d: str(int(d.group()) - 1), day_of_week)
        return " ".join(field.replace("?", "*") for field in (minutes, hours, day_of_month, month, day_of_week))


WEBHOOK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
# Celery's rate limit syntax: tasks per second, minute or hour.
RATE_LIMIT = re.compile(r"^\d+(\.\d+)?/[smh]$")


@dataclass(frozen=True)
class Webhook:
    """A destination that files' outcomes are POSTed to, as signed JSON (tasks/webhooks.py).

    Its URL and secret are the deployment's: DROPQ_WEBHOOK_<NAME>_URL and _SECRET (dropq/settings.py); without
    them it is off. Files whose key (relative to the inbox) matches one of `patterns` use it, and any file may
    ask for it in its metadata (`x-amz-meta-dropq-webhook`: the name, or a URL below the destination's URL).
    Deliveries are rate limited with Celery's `rate_limit` (per worker), retried with backoff on 5xx, 429 and
    timeouts, and given up after `max_attempts`, with the reason in the ledger.
    """

    name: str
    patterns: tuple[str, ...] = ()
    rate_limit: str = "10/s"
    max_attempts: int = 5
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        _check(bool(WEBHOOK_NAME.match(self.name)), f"webhook name {self.name!r} must match {WEBHOOK_NAME.pattern}")
        _check(bool(RATE_LIMIT.match(self.rate_limit)), f"webhook {self.name}: rate_limit {self.rate_limit!r} is not like '10/s', '100/m'")
        _check(1 <= self.max_attempts <= 20, f"webhook {self.name}: max_attempts {self.max_attempts} is outside 1..20")
        _check(0 < self.timeout_seconds <= 60, f"webhook {self.name}: timeout_seconds {self.timeout_seconds} is outside 0..60")

    def matches(self, relative_key: str) -> bool:
        """Whether a key below the inbox prefix uses this webhook by its pattern."""
        return any(_glob(pattern, relative_key) for pattern in self.patterns)


# What an index copies of each item. KEYS_ONLY copies the keys alone, so that a write changing no index key costs
# the index nothing: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes
PROJECTIONS = ("KEYS_ONLY", "ALL")
# A table has at most 20 global secondary indexes: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html
DYNAMODB_MAX_INDEXES = 20


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index of a table: its partition and sort key attributes, and what it copies of an item."""

    name: str
    partition_key: str
    sort_key: str
    projection: str = "KEYS_ONLY"

    def __post_init__(self) -> None:
        _check(self.projection in PROJECTIONS, f"index {self.name}: projection {self.projection!r} is not one of {PROJECTIONS}")


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table: keys, TTL attribute, global secondary indexes, and the shards of its shared index keys.

    An index partition key that many files share (today's files, the files in flight on one queue) is written as
    `<value>#<shard>` with one of `shards` suffixes: one partition key value takes at most 1,000 writes/s
    (DYNAMODB_PARTITION_WRITES), so `shards` of them take `shards` times that. Readers query every shard.
    """

    name: str
    partition_key: str
    sort_key: str | None = None
    ttl_attribute: str = "ttl"
    indexes: tuple[IndexSpec, ...] = ()
    shards: int = 1

    def __post_init__(self) -> None:
        _check(bool(DYNAMODB_TABLE_NAME.match(self.name)), f"table name {self.name!r} must match {DYNAMODB_TABLE_NAME.pattern}")
        _check(len(self.indexes) <= DYNAMODB_MAX_INDEXES, f"table {self.name}: {len(self.indexes)} indexes, over DynamoDB's 20")
        names = [index.name for index in self.indexes]
        _check(len(set(names)) == len(names), f"table {self.name}: index names repeat: {names}")
        _check(1 <= self.shards <= MAX_SHARDS, f"table {self.name}: shards {self.shards} is outside 1..{MAX_SHARDS}")

    def index(self, name: str) -> IndexSpec:
        """The index called `name`."""
        for index in self.indexes:
            if index.name == name:
                return index
        raise KeyError(f"table {self.name} has no index {name!r}; known: {sorted(i.name for i in self.indexes)}")


@dataclass(frozen=True)
class WorkerPool:
    """A group of Celery workers consuming some queues, scaled between min and max workers on their backlog.

    Locally each worker is a `celery worker` process; in AWS it is a Fargate task with `cpu` units and `memory_mib`.
    """

    name: str
    queues: tuple[str, ...]
    concurrency: int = 2
    min_workers: int = 0
    max_workers: int = 4
    # Messages (waiting + in flight) one worker should have; the autoscaler keeps the pool near it.
    backlog_per_worker: int = 20
    # Messages one worker keeps in hand beyond those it runs (kept invisible meanwhile), so that its processes
    # never wait for a receive. 10 fills one ReceiveMessage: the fewest requests per task. A pool of long tasks
    # may want 0, so that idle workers are not left waiting behind a busy one's prefetch.
    prefetch: int = SQS_MAX_BATCH
    cpu: int = 1024
    memory_mib: int = 2048
    # Fargate Spot: up to 70% cheaper, may be interrupted (SIGTERM with two minutes' notice, which the fault suite shows
    # dropq survives: running tasks finish or go back to their queue). A Spot pool keeps its first task on demand, so
    # that it still makes progress when Spot has no capacity to give.
    spot: bool = False
    # The CPU its tasks run on, and the worker image is built for: x86_64, or arm64 (Graviton: about 20% cheaper on
    # demand; Fargate Spot runs x86_64 only).
    architecture: str = X86_64
    # Seconds between SIGTERM and SIGKILL; running tasks get `shutdown_grace` of them to finish.
    stop_timeout: int = FARGATE_MAX_STOP_TIMEOUT

    def __post_init__(self) -> None:
        _check(bool(POOL_NAME.match(self.name)), f"pool name {self.name!r} must match {POOL_NAME.pattern}")
        _check(bool(self.queues), f"pool {self.name}: consumes no queue")
        _check(self.concurrency >= 1, f"pool {self.name}: concurrency {self.concurrency} must be at least 1")
        _check(
            0 <= self.min_workers <= self.max_workers and self.max_workers >= 1,
            f"pool {self.name}: need 0 <= min_workers ({self.min_workers}) <= max_workers ({self.max_workers}), max >= 1",
        )
        _check(self.backlog_per_worker >= 1, f"pool {self.name}: backlog_per_worker must be at least 1")
        _check(self.prefetch >= 0, f"pool {self.name}: prefetch {self.prefetch} must be at least 0")
        allowed = FARGATE_MEMORY_MIB.get(self.cpu)
        _check(allowed is not None, f"pool {self.name}: cpu {self.cpu} is not a Fargate size; choose one of {sorted(FARGATE_MEMORY_MIB)}")
        _check(
            self.memory_mib in (allowed or ()),
            f"pool {self.name}: memory_mib {self.memory_mib} does not fit cpu {self.cpu} on Fargate "
            f"(allowed: {(allowed or (0,))[0]}..{(allowed or (0,))[-1]} MiB, see FARGATE_MEMORY_MIB)",
        )
        _check(
            SHUTDOWN_MARGIN < self.stop_timeout <= FARGATE_MAX_STOP_TIMEOUT,
            f"pool {self.name}: stop_timeout {self.stop_timeout}s must be in {SHUTDOWN_MARGIN + 1}..{FARGATE_MAX_STOP_TIMEOUT}s",
        )
        _check(self.architecture in ARCHITECTURES, f"pool {self.name}: architecture {self.architecture!r} is not one of {ARCHITECTURES}")
        _check(
            not (self.spot and self.architecture != X86_64),
            f"pool {self.name}: Fargate Spot runs x86_64 tasks only; choose spot or architecture={self.architecture!r}",
        )

    def prefetch_multiplier(self, concurrency: int | None = None) -> int:
        """Celery's `worker_prefetch_multiplier` for a worker with `concurrency` processes: one message each, plus `prefetch`."""
        return 1 + -(-self.prefetch // (concurrency or self.concurrency))

    @property
    def receive_batch(self) -> int:
        """Messages a worker receives at once: it waits until that many fit, then one ReceiveMessage brings them."""
        return max(1, min(SQS_MAX_BATCH, self.prefetch))

    @property
    def shutdown_grace(self) -> int:
        """Seconds a worker gives running tasks after SIGTERM before it releases them to other workers and exits."""
        return self.stop_timeout - SHUTDOWN_MARGIN


@dataclass(frozen=True)
class Provisioned:
    """The ledger table and each of its indexes on provisioned capacity, autoscaled between a floor and a ceiling of
    units per second to keep `target_percent` of what is provisioned in use.

    For steady traffic: at 70% a write unit costs about 0.4x an on-demand one (BENCHMARKS.md, "What a million files
    cost"). Traffic above what is provisioned is throttled (dropq's clients retry it, and the fault suite proves
    nothing is lost) until autoscaling raises the capacity, which takes minutes; a burst of millions wants on demand.
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/AutoScaling.html
    """

    min_writes: int = 5
    max_writes: int = DYNAMODB_TABLE_MAX_UNITS
    min_reads: int = 5
    max_reads: int = 12_000
    # DynamoDB autoscaling accepts a target between 20% and 90% of what is provisioned.
    target_percent: int = 70

    def __post_init__(self) -> None:
        for kind in ("writes", "reads"):
            low, high = getattr(self, f"min_{kind}"), getattr(self, f"max_{kind}")
            _check(1 <= low <= high, f"provisioned: min_{kind} {low} must be at least 1 and at most max_{kind} {high}")
            _check(high <= DYNAMODB_TABLE_MAX_UNITS, f"provisioned: max_{kind} {high} is over a table's {DYNAMODB_TABLE_MAX_UNITS} units/s")
        _check(20 <= self.target_percent <= 90, f"provisioned: target_percent {self.target_percent} is outside DynamoDB's 20..90")


@dataclass(frozen=True)
class Capacity:
    """What a deployment provisions ahead of its traffic, beyond on-demand's defaults (the stack deploys it).

    None leaves AWS's default: an on-demand table starts able to serve 4,000 writes/s and 12,000 reads/s and
    then doubles its previous peak within 30 minutes at most; the producer shares the account's concurrency.
    """

    # DynamoDB warm throughput of the ledger table, and of each of its indexes: units per second it serves at once.
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput.html
    ledger_warm_writes: int | None = None
    ledger_warm_reads: int | None = None
    index_warm_writes: int | None = None
    # The producer Lambda's reserved concurrency: kept for it out of the account's (1,000 by default), and its cap.
    producer_reserved_concurrency: int | None = None
    # The ledger on provisioned capacity instead of on demand (`cdk deploy -c ledger-capacity=provisioned`).
    ledger_provisioned: Provisioned | None = None

    def __post_init__(self) -> None:
        for name in ("ledger_warm_writes", "ledger_warm_reads", "index_warm_writes", "producer_reserved_concurrency"):
            value = getattr(self, name)
            _check(value is None or value >= 1, f"capacity: {name} {value} must be at least 1, or None for AWS's default")
        for name in ("ledger_warm_writes", "ledger_warm_reads", "index_warm_writes"):
            value = getattr(self, name)
            _check(
                value is None or value <= DYNAMODB_TABLE_MAX_UNITS,
                f"capacity: {name} {value} is over the {DYNAMODB_TABLE_MAX_UNITS} units/s an on-demand table or index may take "
                "by default (ask AWS for more first)",
            )


@dataclass(frozen=True)
class InboxEvents:
    """How S3's notifications reach the producer: an SQS queue it consumes in batches (a Lambda event source mapping).

    S3 notifies the queue (durable for its retention); Lambda polls it and invokes the producer with up to
    `batch_size` notifications; the producer reports the ones it failed on (a partial batch response), which come
    back after the visibility timeout, and after `max_receive_count` receives go to the producer's failure queue.
    https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html
    """

    queue: str = "inbox-events"
    # Notifications per invocation. Lambda's pollers receive up to 10 messages a call, so under load a batch of 10 is
    # full without waiting; above 10 Lambda requires a batching window of at least a second.
    batch_size: int = 10
    # Seconds Lambda waits to fill a batch. 0: at low traffic a file is handled as soon as it arrives (a window is whole
    # seconds, so any window would add up to a second to a lone file's latency), and under load batches fill anyway.
    batching_window_seconds: int = 0
    # The producer's timeout: a batch of 10 takes well under a second (a send per queue; it writes nothing else).
    function_timeout_seconds: int = 10
    # Receives before a notification is parked in the failure queue: each retry comes a visibility timeout later.
    max_receive_count: int = 5
    retention_seconds: int = SQS_MAX_RETENTION

    def __post_init__(self) -> None:
        _check(bool(SQS_QUEUE_NAME.match(self.queue)), f"inbox events queue name {self.queue!r} must match {SQS_QUEUE_NAME.pattern}")
        _check(1 <= self.batch_size <= LAMBDA_SQS_MAX_BATCH, f"inbox batch_size {self.batch_size} is outside 1..{LAMBDA_SQS_MAX_BATCH}")
        _check(
            0 <= self.batching_window_seconds <= LAMBDA_MAX_BATCHING_WINDOW,
            f"inbox batching_window_seconds {self.batching_window_seconds} is outside 0..{LAMBDA_MAX_BATCHING_WINDOW}",
        )
        _check(
            self.batch_size <= SQS_MAX_BATCH or self.batching_window_seconds >= 1,
            f"inbox batch_size {self.batch_size} is over {SQS_MAX_BATCH}: Lambda then needs a batching window of at least 1 s",
        )
        _check(1 <= self.function_timeout_seconds <= 900, f"producer timeout {self.function_timeout_seconds} s is outside 1..900")
        low, high = SQS_MAX_RECEIVE_COUNT
        _check(low <= self.max_receive_count <= high, f"inbox max_receive_count {self.max_receive_count} is outside {low}..{high}")

    @property
    def visibility_timeout(self) -> int:
        """Six times the function's timeout, as Lambda asks of an event source queue (room for retries when throttled)."""
        return LAMBDA_SQS_VISIBILITY_FACTOR * self.function_timeout_seconds


def output_folder(output_prefix: str, pipeline: str, key: str) -> str:
    """The folder that holds one input's outputs: <output prefix><pipeline>/<input key>/."""
    return f"{output_prefix}{pipeline}/{key}/"


@dataclass(frozen=True)
class Topology:
    """Everything dropq is made of, checked on construction."""

    bucket: str
    queues: tuple[QueueSpec, ...]
    routes: tuple[Route, ...]
    pools: tuple[WorkerPool, ...]
    ledger_table: TableSpec
    results_table: TableSpec
    # The first rule a file matches names its queue; a file no rule matches waits in the first queue.
    queue_rules: tuple[QueueRule, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    webhooks: tuple[Webhook, ...] = ()
    inbox_prefix: str = "incoming/"
    output_prefix: str = "processed/"
    # Where periodic tasks write what they produce (the daily report).
    reports_prefix: str = "reports/"
    result_ttl_seconds: int = 7 * 24 * 60 * 60
    # How long the ledger keeps a file's entry after its last write (DynamoDB's TTL then deletes it, at no charge).
    # Most entries are files that succeeded, and their storage is a fixed cost of every file (BENCHMARKS.md): they are
    # kept 35 days, as long as a message can still bring their file back (a repeated notification waiting in the inbox
    # events queue, a task message in its queue and then its dead-letter queue, redriven: the entry is what keeps it
    # from running again; `message_life_seconds`), which is also a month of history for `dropq file` and the dashboard.
    ledger_ttl_seconds: int = 35 * 24 * 60 * 60
    # A failed file's entry is kept longer: it is what operators retry (`dropq retry`, the dashboard's retry-all) and the
    # daily report lists, often once its pipeline is fixed weeks later; few files fail, so it costs little.
    failed_ttl_seconds: int = 90 * 24 * 60 * 60
    # Where events the producer could not handle end: the inbox events queue's dead letters, and schedule firings that
    # failed Lambda's retries (their on-failure destination).
    producer_failure_queue: str = "producer-failures"
    inbox_events: InboxEvents = InboxEvents()
    producer_retries: int = 2
    max_input_bytes: int = 512 * 1024 * 1024
    capacity: Capacity = Capacity()
    queue_names: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check(bool(S3_BUCKET_NAME.match(self.bucket)), f"bucket name {self.bucket!r} must match {S3_BUCKET_NAME.pattern}")
        for label, prefix in (
            ("inbox_prefix", self.inbox_prefix),
            ("output_prefix", self.output_prefix),
            ("reports_prefix", self.reports_prefix),
        ):
            _check(prefix.endswith("/") and len(prefix) > 1, f"{label} {prefix!r} must be a non-empty folder ending in '/'")
        for label, prefix in (("output_prefix", self.output_prefix), ("reports_prefix", self.reports_prefix)):
            _check(
                not prefix.startswith(self.inbox_prefix) and not self.inbox_prefix.startswith(prefix),
                f"inbox_prefix {self.inbox_prefix!r} and {label} {prefix!r} overlap: what dropq writes would re-trigger the producer",
            )
        names = [q.name for q in self.queues]
        _check(len(set(names)) == len(names), f"queue names repeat: {names}")
        taken = {*names, *(q.dlq_name for q in self.queues), self.producer_failure_queue}
        _check(self.inbox_events.queue not in taken, f"the inbox events queue {self.inbox_events.queue!r} has another queue's name")
        object.__setattr__(self, "queue_names", frozenset(names))
        _check(bool(self.routes), "no routes: every file needs a pipeline")
        _check(bool(self.queues), "no queues: tasks need somewhere to wait")
        _check(self.routes[-1].pattern == "*", "the last route must be the catch-all '*', so that every file is routed")
        routed = {route.pipeline for route in self.routes}
        for rule in self.queue_rules:
            _check(rule.queue in self.queue_names, f"queue rule {rule.pattern!r} names unknown queue {rule.queue!r}")
            unrouted = set(rule.pipelines) - routed
            _check(not unrouted, f"queue rule for {rule.queue} names pipelines no route leads to: {sorted(unrouted)}")
        consumed = {q for pool in self.pools for q in pool.queues}
        for pool in self.pools:
            unknown = set(pool.queues) - self.queue_names
            _check(not unknown, f"pool {pool.name} consumes unknown queues {sorted(unknown)}")
        _check(consumed == set(self.queue_names), f"queues no pool consumes: {sorted(self.queue_names - consumed)}")
        webhook_names = [w.name for w in self.webhooks]
        _check(len(set(webhook_names)) == len(webhook_names), f"webhook names repeat: {webhook_names}")
        schedule_names = [s.name for s in self.schedules]
        _check(len(set(schedule_names)) == len(schedule_names), f"schedule names repeat: {schedule_names}")
        for schedule in self.schedules:
            _check(
                schedule.queue is None or schedule.queue in self.queue_names,
                f"schedule {schedule.name} names unknown queue {schedule.queue!r}",
            )
        _check(self.max_input_bytes > 0, f"max_input_bytes {self.max_input_bytes} must be positive")
        _check(0 <= self.producer_retries <= 2, f"producer_retries {self.producer_retries} is outside Lambda's range 0..2")
        _check(
            self.ledger_ttl_seconds >= self.message_life_seconds,
            f"ledger_ttl_seconds ({self.ledger_ttl_seconds}) must be at least the {self.message_life_seconds} s a message can "
            "bring a file back (the inbox events queue's retention, then a task queue's and its DLQ's): an entry gone "
            "sooner lets that message run its file again",
        )
        _check(
            self.failed_ttl_seconds >= self.ledger_ttl_seconds,
            f"failed_ttl_seconds ({self.failed_ttl_seconds}) must be at least ledger_ttl_seconds ({self.ledger_ttl_seconds})",
        )

    @property
    def message_life_seconds(self) -> int:
        """The longest a message can bring a file back after its entry was last written: a repeated notification
        waiting in the inbox events queue, or a task message in its queue, then its dead-letter queue, redriven."""
        return self.inbox_events.retention_seconds + max(q.retention_seconds + q.dlq_retention_seconds for q in self.queues)

    def pool(self, name: str) -> WorkerPool:
        """The pool called `name`."""
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(f"no pool {name!r} in the topology; known: {sorted(p.name for p in self.pools)}")

    def queue(self, name: str) -> QueueSpec:
        """The queue called `name`."""
        for spec in self.queues:
            if spec.name == name:
                return spec
        raise KeyError(f"no queue {name!r} in the topology; known: {sorted(self.queue_names)}")

    def schedule(self, name: str) -> Schedule:
        """The schedule called `name`, with its queue filled in."""
        for schedule in self.schedules:
            if schedule.name == name:
                return schedule if schedule.queue else dataclasses.replace(schedule, queue=self.default_queue)
        raise KeyError(f"no schedule {name!r} in the topology; known: {sorted(s.name for s in self.schedules)}")

    def is_inbox_key(self, key: str, size: int | None = 0) -> bool:
        """Whether an object of `size` bytes at `key` is an input the producer should handle: below the inbox, and not a
        folder marker (an empty object whose key ends in '/', as S3's console makes). One whose key ends in '/' but
        that holds bytes is an input: it fails with a reason a person can act on, instead of passing unseen. A size
        not known yet (None) rules out the key only."""
        folder_marker = key.endswith("/") and size == 0
        return key.startswith(self.inbox_prefix) and key != self.inbox_prefix and not folder_marker

    @property
    def default_queue(self) -> str:
        """The queue of files no queue rule matches."""
        return self.queues[0].name

    def _relative(self, key: str) -> str:
        return key[len(self.inbox_prefix) :] if key.startswith(self.inbox_prefix) else key

    def route(self, key: str) -> Route:
        """The first route whose pattern matches an inbox key."""
        relative = self._relative(key)
        return next(route for route in self.routes if route.matches(relative))

    def place(self, key: str, size: int) -> Placement:
        """The pipeline and queue of an inbox file of `size` bytes: its route's pipeline, the first matching rule's queue."""
        pipeline, relative = self.route(key).pipeline, self._relative(key)
        rule = next((rule for rule in self.queue_rules if rule.matches(relative, pipeline, size)), None)
        return Placement(pipeline=pipeline, queue=rule.queue if rule else self.default_queue)

    def output_folder(self, pipeline: str, key: str) -> str:
        """The folder that holds one input's outputs: processed/<pipeline>/<input key>/."""
        return output_folder(self.output_prefix, pipeline, key)


DEFAULT_QUEUE = "default"
# Large inputs, which need more memory and time than a default worker has.
HEAVY_QUEUE = "heavy"
# Files dropped below incoming/urgent/: their own queue and pool, so that they never wait behind a backlog.
URGENT_QUEUE = "urgent"
MiB = 1024 * 1024
# Shards of the ledger's shared index keys (TableSpec.shards): see the ledger table below.
LEDGER_SHARDS = 64

TOPOLOGY = Topology(
    bucket="dropq-local",
    queues=(
        QueueSpec(name=DEFAULT_QUEUE),
        QueueSpec(name=HEAVY_QUEUE, task_time_limit=1800, visibility_timeout=120),
        QueueSpec(name=URGENT_QUEUE),
    ),
    routes=(
        Route("*.jpg", "images"),
        Route("*.jpeg", "images"),
        Route("*.png", "images"),
        Route("*.webp", "images"),
        Route("*.csv", "tables"),
        Route("*.jsonl", "tables"),
        Route("*.ndjson", "tables"),
        Route("*", "metadata"),
    ),
    queue_rules=(
        QueueRule(URGENT_QUEUE, pattern="urgent/*"),
        QueueRule(HEAVY_QUEUE, pipelines=("images",), min_bytes=16 * MiB),
        QueueRule(HEAVY_QUEUE, pipelines=("tables",), min_bytes=64 * MiB),
    ),
    schedules=(
        # Just after midnight UTC: the day before, summed up in reports/daily/<day>.json (tasks/periodic.py).
        Schedule("daily-report", "cron(5 0 * * ? *)", "dropq.report"),
    ),
    # Off until a deployment sets DROPQ_WEBHOOK_NOTIFY_URL and _SECRET; files ask for it in their metadata.
    webhooks=(Webhook(name="notify"),),
    pools=(
        # The batch pools run on Spot (a fraction of the price; an interruption costs a task's redelivery at most).
        WorkerPool(name="default", queues=(DEFAULT_QUEUE,), concurrency=2, min_workers=0, max_workers=4, spot=True),
        # One big file at a time per worker, with room for it; none prefetched, so a second worker can take the next.
        WorkerPool(
            name="heavy",
            queues=(HEAVY_QUEUE,),
            concurrency=1,
            cpu=2048,
            memory_mib=8192,
            max_workers=2,
            backlog_per_worker=2,
            prefetch=0,
            spot=True,
        ),
        # Scales to zero like the others; give it min_workers=1 if urgent files must not wait for a worker to start.
        # On demand: an urgent file should not wait for an interrupted task's redelivery.
        WorkerPool(name="urgent", queues=(URGENT_QUEUE,), concurrency=2, max_workers=2, backlog_per_worker=4, prefetch=0),
    ),
    ledger_table=TableSpec(
        name="ledger",
        partition_key="pk",
        sort_key="sk",
        ttl_attribute="expires_at",
        indexes=(
            # Every file version, newest first, by the day and time it entered the ledger (its first claim, or a
            # backfill's queueing): written once per version.
            IndexSpec("recent", "recent_shard", "queued_at"),
            # Failed files by the day and time they failed (sparse: a failure is the exception).
            IndexSpec("failed", "failed_shard", "failed_at"),
        ),
        # The `recent` index takes one write per file on its day's shards: 64 shards of 1,000 writes a second serve
        # 64,000 files/s, a margin of six over 10,000 for an uneven spread; a status refresh queries the 64 shards.
        shards=LEDGER_SHARDS,
    ),
    results_table=TableSpec(name="results", partition_key="id", ttl_attribute="ttl"),
)


# What a deployment needs to hold 10,000 small files per second (BENCHMARKS.md, "Capacity plan" and "Partition load"
# show the figures these come from); `cdk deploy -c profile=production` deploys it. Everything else is TOPOLOGY's.
PRODUCTION_WORKERS = 250
PRODUCTION = dataclasses.replace(
    TOPOLOGY,
    pools=(
        # 10,000 small images/s at about 20 ms of CPU each is 200 vCPUs busy: 250 one-vCPU workers leave a quarter
        # spare for a burst. Fargate starts at most 500 tasks a minute per service, so they are all up within a minute.
        dataclasses.replace(TOPOLOGY.pools[0], max_workers=PRODUCTION_WORKERS),
        dataclasses.replace(TOPOLOGY.pools[1], max_workers=20),
        dataclasses.replace(TOPOLOGY.pools[2], max_workers=10),
    ),
    capacity=Capacity(
        # The ledger takes 2 write units per file on the table (claimed, recorded) and 1 on its `recent` index (at the
        # claim): 20,000 and 10,000 units/s at 10,000 files/s, which a new table would reach only after an hour of
        # doubling. The producer writes nothing, so a burst reaches the ledger no faster than workers take it: half as
        # much again as needed, for a faster day. Reads are duplicate deliveries' and operators' (a few per second).
        ledger_warm_writes=30_000,
        ledger_warm_reads=12_000,
        index_warm_writes=15_000,
        # A batch of 10 notifications an invocation, at about 60 ms (BENCHMARKS.md, "Producer"): 60 running at once take
        # 10,000 files/s. 500, half the account's 1,000, leave room for a slower day and a burst's waiting notifications;
        # the event source mapping invokes no more than that at once (infra/cloud/producer.py).
        producer_reserved_concurrency=500,
    ),
)
# The topologies a deployment may choose by name (DROPQ_PROFILE for its processes, `-c profile=` for the stack).
PROFILES = {"default": TOPOLOGY, "production": PRODUCTION}

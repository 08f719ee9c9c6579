"""`make bench`: every benchmark in one run on this machine; prints the report and writes BENCHMARKS.md.

`python -m bench.run --smoke` runs a tiny version of each (what `make test` runs to keep them working).
Workers' and servers' logs stay in the folder printed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import click

from bench import costs, latency, partitions, pipelines, producer, stopping, throughput
from bench.throughput import Drain, Idle
from dropq.settings import local_settings
from dropq.topology import DYNAMODB_PARTITION_READS, DYNAMODB_PARTITION_WRITES, RECEIVE_VISIBILITY_SECONDS, TOPOLOGY, WorkerPool
from infra import prices
from infra.local.cloud import LocalCloud
from infra.local.provision import provision
from infra.local.server import MotoServer, free_port
from ops import capacity

T = TypeVar("T")

# SQS standard queues: USD per million requests beyond the free tier (infra/prices.py).
SQS_USD_PER_MILLION = prices.SQS.standard_million


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does."""

    backlogs: tuple[int, ...]
    rounds: int
    idle_seconds: float
    producer_records: int
    latency_files: int
    latency_interval: float
    images: int
    tables: int
    # Partition load: files of each small workload, files that wait, how long they wait, and ledger sizes a refresh reads.
    partition_files: int
    waiting_files: int
    waiting_seconds: float
    refresh_sizes: tuple[int, ...]


FULL = Sizes(
    backlogs=(200, 1000),
    rounds=3,
    idle_seconds=60,
    producer_records=500,
    latency_files=300,
    latency_interval=0.25,
    images=40,
    tables=30,
    partition_files=300,
    waiting_files=20,
    waiting_seconds=60,
    refresh_sizes=(1000, 10_000),
)
SMOKE = Sizes(
    backlogs=(20,),
    rounds=1,
    idle_seconds=3,
    producer_records=20,
    latency_files=5,
    latency_interval=0.1,
    images=2,
    tables=2,
    partition_files=6,
    waiting_files=2,
    waiting_seconds=3,
    refresh_sizes=(50, 200),
)


@dataclass(frozen=True)
class Results:
    drains: dict[int, list[Drain]]
    idle: Idle
    producer: list[producer.ProducerCost]
    latency: latency.Latency
    efficiency: list[pipelines.Efficiency]
    processes: int
    queues: int  # queues one worker of the measured pool long-polls
    partitions: list[partitions.PhaseLoad]
    refreshes: list[partitions.RefreshCost]
    costs: list[costs.FileCosts]
    stops: list[stopping.Stop]

    def comparisons(self, compute: costs.Compute | None = None) -> list[costs.Comparison]:
        """Each cost workload's bill beside its peers', on the default pool's capacity (or `compute`)."""
        pool = TOPOLOGY.pools[0]
        single = next(c for c in self.producer if c.per_event == 1 and not c.batched)
        batched = next(c for c in self.producer if c.batched)
        naive = next(d for d in self.drains[max(self.drains)] if d.consumer == "naive Celery")
        days = TOPOLOGY.ledger_ttl_seconds // 86400
        return costs.compare(self.costs, batched, single, naive, pool, compute or default_compute(pool), days)


def default_compute(pool: WorkerPool) -> costs.Compute:
    """The capacity a pool runs on as shipped."""
    return next(c for c in costs.COMPUTES if c.spot == pool.spot and (c.price is prices.FARGATE_ARM64) == (pool.architecture == "arm64"))


def _requests(counts: dict[tuple[str, str], int] | dict[str, int]) -> str:
    named = {(k[1] if isinstance(k, tuple) else k): n for k, n in counts.items()}
    return ", ".join(f"{action} {n}" for action, n in sorted(named.items())) or "none"


def throughput_tables(drains: dict[int, list[Drain]]) -> str:
    lines = [
        "| backlog | consumer | tasks/s | worker CPU ms/task | SQS requests/task | requests by action |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for backlog, row in drains.items():
        for d in row:
            lines.append(
                f"| {backlog} | {d.consumer} | {d.tasks_per_second:.1f} | {d.cpu_ms_per_task:.2f} "
                f"| {d.requests_per_task:.2f} | {_requests(d.requests)} |"
            )
    lines += [
        "",
        "| backlog | dropq / boto3 tasks/s | dropq / naive tasks/s | boto3 / naive tasks/s | dropq / naive CPU per task |",
        "|---:|---:|---:|---:|---:|",
    ]
    for backlog, (naive, dropq, boto3) in drains.items():
        lines.append(
            f"| {backlog} | {dropq.tasks_per_second / boto3.tasks_per_second:.2f} | {dropq.tasks_per_second / naive.tasks_per_second:.1f} "
            f"| {boto3.tasks_per_second / naive.tasks_per_second:.1f} | {dropq.cpu_ms_per_task / naive.cpu_ms_per_task:.2f} |"
        )
    return "\n".join(lines)


# How the producer is measured: S3 events of one record (S3 invoking it directly, as before the inbox events queue),
# of ten records, and batches of ten queue messages (the stack's event source mapping under load).
PRODUCER_SHAPES = ((1, False), (10, False), (10, True))


def producer_table(costs: list[producer.ProducerCost]) -> str:
    lines = [
        "| invoked with | records | invocations/record | SendMessageBatch/record | DynamoDB requests/record | records/s "
        "| records/s vs one a call | requests |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    single = next((c for c in costs if c.per_event == 1), costs[0])
    for c in costs:
        shape = f"a batch of {c.per_event} queue messages" if c.batched else f"an S3 event of {c.per_event} record{'s' * (c.per_event > 1)}"
        lines.append(
            f"| {shape} | {c.records} | {c.invocations_per_record:.2f} | {c.requests[('sqs', 'SendMessageBatch')] / c.records:.2f} "
            f"| {c.per_record('dynamodb'):.2f} | {c.records_per_second:.0f} | {c.records_per_second / single.records_per_second:.2f} "
            f"| {_requests(c.requests)} |"
        )
    return "\n".join(lines)


def efficiency_table(rows: list[pipelines.Efficiency], processes: int) -> str:
    lines = [
        f"| pipeline | files | dropq, {processes} processes (s) | plain loop, {processes} processes (s) | loop / dropq time "
        "| dropq CPU ms/file | loop CPU ms/file | loop / dropq CPU | moto CPU ms/file |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in rows:
        lines.append(
            f"| {e.pipeline} | {e.files} | {e.dropq_seconds:.1f} | {e.loop_seconds:.1f} | {e.ratio:.2f} "
            f"| {e.dropq_cpu_ms / e.files:.0f} | {e.loop_cpu_ms / e.files:.0f} | {e.cpu_ratio:.2f} | {e.server_cpu_ms / e.files:.0f} |"
        )
    return "\n".join(lines)


def idle_costs(r: Results) -> str:
    idle_hour = r.idle.per_hour(r.idle.busy, "sqs")
    zero_hour = r.idle.per_hour(r.idle.scaled_to_zero, "sqs")
    usd = prices.SQS.standard_million
    queues = f"{r.queues} queue{'s' if r.queues > 1 else ''}"
    return f"""| while idle | SQS requests an hour | USD an hour |
|---|---:|---:|
| per running worker ({queues}, 20 s long polls) | {idle_hour:,.0f} | {idle_hour / 1e6 * usd:.4f} |
| a pool scaled to zero | {zero_hour:,.0f} | {zero_hour / 1e6 * usd:.4f} |

In AWS the scaling policies read CloudWatch's queue metrics, which cost no SQS requests; the local autoscaler of
`dropq up` reads GetQueueAttributes instead and is not counted here. An idle worker also writes a heartbeat to
DynamoDB: {r.idle.per_hour(r.idle.busy, "dynamodb"):,.0f} requests an hour. Lambda's pollers of the inbox events queue
long-poll it while it is empty too (AWS does not publish how many pollers; at 5, 20 s apiece, about 900 requests an
hour, $0.0004)."""


def cost_section(r: Results) -> str:
    comparisons = r.comparisons()
    pool = TOPOLOGY.pools[0]
    compute = default_compute(pool)
    verified = ", ".join(
        f"{name} {price.status}"
        for name, price in (("SQS", prices.SQS), ("DynamoDB", prices.DYNAMODB), ("Lambda", prices.LAMBDA), ("S3", prices.S3))
    )
    return f"""Every request of the real flow counted at the server, for each workload's files dropped at once in the inbox
(bench/costs.py: what is measured and what is modelled), priced at {prices.REGION} list prices recorded on {prices.RECORDED}
(infra/prices.py, each with its page: {verified}). USD per **million files**. Workers: the default pool's
tasks ({pool.cpu / 1024:g} vCPU, {pool.memory_mib / 1024:g} GB) on {compute.name}, busy {costs.UTILISATION:.0%} of the time they
run; the producer on arm64 at 256 MB, its duration measured in process (a batch of 10). S3's requests (each file's
GET, each output's PUT) are the same whoever does the work: they are shown apart and left out of every total and ratio.

{costs.bill_table(comparisons)}

The peers, from the same measurements: **Lambda-direct** is an S3-triggered function doing the pipeline itself, one
invocation per file billed for the plain loop's CPU seconds at {costs.LAMBDA_ONE_VCPU_MB} MB (one vCPU), arm64: a floor, since
it also waits on S3 (and lives within Lambda's {costs.LAMBDA_MAX_SECONDS // 60} minutes and {costs.LAMBDA_MAX_MEMORY_MB:,} MB).
**Celery as in tutorials** is bench/naive.py's worker (its SQS requests and CPU per task measured in the drains above)
behind a producer Lambda that sends one message per file, without a ledger, on the same Fargate capacity.

What the bill counts, per file (measured):

{costs.counts_table(r.costs)}

DynamoDB write units per file, by table and index: {"; ".join(f"{c.workload}: {costs.where_the_money_goes(c)}" for c in r.costs)}.

dropq's total per million files (S3 apart) on each kind of Fargate capacity (Spot at its largest discount, 70%;
ARM at the same CPU seconds as measured here on x86, which is modelled), and for steady traffic with the tables on
provisioned capacity (`cdk deploy -c ledger-capacity=provisioned`: autoscaled at {costs.PROVISIONED_UTILISATION:.0%} utilisation, so a
write unit costs ${prices.DYNAMODB_PROVISIONED.write_million(costs.PROVISIONED_UTILISATION):.3f} a million against
${prices.DYNAMODB.write_million:.3f} on demand; bursts above what is provisioned wait for autoscaling, throttled and retried):

{costs.compute_table(r.costs, next(c for c in r.producer if c.batched), pool, TOPOLOGY.ledger_ttl_seconds // 86400, compute)}

### The cheaper default path, before and after

{before_after(r)}

### Every ledger request on the hot path, and the guarantee that needs it

{costs.hot_path_table()}

No longer made: {"; ".join(costs.REMOVED)}. Measured on the ledger table and its indexes, per file:
{"; ".join(f"{c.workload} {costs.ledger_units(c.write_units) / c.files:.2f}" for c in r.costs)} write units (the hot path's
{costs.hot_path_units():g}, plus the timers' amortised writes, renewals of files longer than a lease, and the parts of a
split file, each a task of its own).

{idle_costs(r)}"""


def before_after(r: Results) -> str:
    """What the cheaper default path changed for a small image, per million files, each change from this run's figures."""
    small = next(c for c in r.comparisons() if c.costs.workload == "small image")
    single = next(c for c in r.producer if c.per_event == 1 and not c.batched)
    batched = next(c for c in r.producer if c.batched)
    pool, days = TOPOLOGY.pools[0], TOPOLOGY.ledger_ttl_seconds // 86400
    on_demand = next(c for c in costs.COMPUTES if not c.spot and c.price is prices.FARGATE_X86)
    fargate_before = costs.dropq_bill(small.costs, batched, pool, on_demand, days).usd[costs.FARGATE]

    def producer_usd(cost: producer.ProducerCost, queued: bool) -> float:
        """The producer's Lambda and SQS bill per million files; `queued`: with the inbox events queue's requests."""
        invocations = cost.invocations_per_record
        lambda_usd = costs.producer_usd_per_file(cost, invocations) * costs.MILLION
        sends = cost.requests[("sqs", "SendMessageBatch")] / cost.records + ((1 + 2 * invocations) if queued else 0)
        return lambda_usd + sends * prices.SQS.standard_million

    def sends(cost: producer.ProducerCost) -> str:
        return f"{cost.invocations_per_record:.2f} invocations, {cost.requests[('sqs', 'SendMessageBatch')] / cost.records:.2f} sends"

    results = sum(u for label, u in small.costs.write_units.items() if "results" in label) / small.costs.files
    outcome_line, enqueued_line = costs.sample_log_bytes()
    logs_per_file = small.costs.log_bytes / small.costs.files
    units = costs.ledger_units(small.costs.write_units) / small.costs.files
    rows = [
        (
            "the ledger's write units a file: the producer's `queued` entry (the entry, `recent`, `open`) and the outcome's "
            "leaving `open` → none: the claim creates the entry (measured at the server, timers' and renewals' included)",
            f"{costs.WRITE_UNITS_PER_SMALL_IMAGE_BEFORE:.2f}",
            f"{units:.2f}",
            (costs.WRITE_UNITS_PER_SMALL_IMAGE_BEFORE - units) * prices.DYNAMODB.write_million,
        ),
        (
            "producer: an invocation per file (S3 invoking it) → a batch of 10 from the inbox events queue",
            sends(single),
            sends(batched) + " (+ S3's SendMessage and the mapping's receive and delete)",
            producer_usd(single, queued=False) - producer_usd(batched, queued=True),
        ),
        (
            "a Celery result per task → only chord parts store one",
            "1 GetItem + 1 PutItem",
            f"{results:.2f} write units",
            prices.DYNAMODB.write_million + prices.DYNAMODB.read_million,
        ),
        (
            "a worker's outcome line, its EMF record: each fact once (no `location`, `timestamp`, `bucket`, `event` beside "
            "`message`, `state` beside the event, `duration_ms` beside the metric; the count that happened only, one number a metric)",
            f"{costs.OUTCOME_LINE_BYTES_BEFORE:,} bytes",
            f"{outcome_line:,} bytes",
            costs.logs_usd(costs.OUTCOME_LINE_BYTES_BEFORE - outcome_line),
        ),
        (
            "the producer's `enqueued` line per file → at DEBUG (the ledger has it; the batch's `handled` line counts it)",
            f"{costs.ENQUEUED_LINE_BYTES_BEFORE:,} bytes",
            f"{enqueued_line:,} bytes",
            costs.logs_usd(costs.ENQUEUED_LINE_BYTES_BEFORE - enqueued_line),
        ),
        (
            "logs per small image, producer and workers together (measured: the bytes their logs grew by, over the files)",
            f"{costs.LOG_BYTES_PER_SMALL_IMAGE_BEFORE:,} bytes",
            f"{logs_per_file:,.0f} bytes",
            costs.logs_usd(costs.LOG_BYTES_PER_SMALL_IMAGE_BEFORE - logs_per_file),
        ),
        (
            "a succeeded file's entry at rest, with its index entries: NULLs, its lease owner once ended, its bucket and "
            "key again beside its partition key → none of them",
            f"{costs.STORED_BYTES_PER_SMALL_IMAGE_BEFORE:,} bytes",
            f"{small.costs.stored_bytes:,.0f} bytes",
            costs.storage_usd(costs.STORED_BYTES_PER_SMALL_IMAGE_BEFORE - small.costs.stored_bytes, days),
        ),
        (
            "a succeeded file's outputs stored as whole keys → by their names below its output folder (its pipeline and "
            "key are the entry's own)",
            f"{costs.STORED_BYTES_WITH_WHOLE_OUTPUTS:,} bytes",
            f"{small.costs.stored_bytes:,.0f} bytes",
            costs.storage_usd(costs.STORED_BYTES_WITH_WHOLE_OUTPUTS - small.costs.stored_bytes, days),
        ),
        (
            "a succeeded file's entry kept 90 days → as long as a message could bring its file back (a failed one 90)",
            f"{costs.LEDGER_TTL_DAYS_BEFORE} days",
            f"{days} days",
            costs.storage_usd(small.costs.stored_bytes, costs.LEDGER_TTL_DAYS_BEFORE) - costs.storage_usd(small.costs.stored_bytes, days),
        ),
        (
            "workers on demand → Spot (the default and heavy pools; the first task on demand)",
            f"${fargate_before:.3f}",
            f"${small.dropq.usd[costs.FARGATE]:.3f}",
            fargate_before - small.dropq.usd[costs.FARGATE],
        ),
    ]
    lines = ["| change | before | after | saved per million small images, USD |", "|---|---|---|---:|"]
    lines += [f"| {change} | {before} | {after} | {saved:.3f} |" for change, before, after, saved in rows]
    return "\n".join(lines)


def targets(r: Results) -> str:
    rows = []

    def row(name: str, target: str, measured: str, met: bool) -> None:
        rows.append(f"| {name} | {target} | {measured} | {'yes' if met else '**no**'} |")

    for backlog, (naive, dropq, boto3) in r.drains.items():
        vs_boto3 = dropq.tasks_per_second / boto3.tasks_per_second
        vs_naive = dropq.tasks_per_second / naive.tasks_per_second
        cpu = dropq.cpu_ms_per_task / naive.cpu_ms_per_task
        requests = dropq.requests_per_task
        row(f"tasks/s vs bare boto3, backlog {backlog}", "≥ 0.8", f"{vs_boto3:.2f}", vs_boto3 >= 0.8)
        row(f"tasks/s vs naive Celery, backlog {backlog}", "≥ 10", f"{vs_naive:.1f}", vs_naive >= 10)
        row(f"CPU per no-op task vs naive, backlog {backlog}", "≤ 0.25", f"{cpu:.2f}", cpu <= 0.25)
        row(f"consumer SQS requests per task, backlog {backlog}", "≤ 0.25", f"{requests:.2f}", requests <= 0.25)
    zero = r.idle.per_hour(r.idle.scaled_to_zero, "sqs")
    row("SQS requests while scaled to zero", "0", f"{zero:.0f}", zero == 0)
    for stop in r.stops:
        if stop.scenario.startswith("dropq worker, idle"):
            target = stopping.IDLE_WORKER_TARGET_SECONDS
            row("an idle worker: SIGTERM to exit, worst", f"≤ {target:g} s", f"{stop.worst:.2f} s", stop.worst <= target)
        elif stop.scenario.startswith("`dropq up`"):
            target = stopping.UP_TARGET_SECONDS
            row("`dropq up`, idle: Ctrl-C to exit, worst", f"≤ {target:g} s", f"{stop.worst:.2f} s", stop.worst <= target)
    p50, p95 = r.latency.percentile(50), r.latency.percentile(95)
    row("end-to-end latency p50", "< 250 ms", f"{p50 * 1000:.0f} ms", p50 < 0.25)
    row("end-to-end latency p95", "< 600 ms", f"{p95 * 1000:.0f} ms", p95 < 0.6)
    for e in r.efficiency:
        row(f"pipeline efficiency, {e.pipeline}", "≥ 0.85", f"{e.ratio:.2f}", e.ratio >= 0.85)
    target = partitions.TARGET_FILES_PER_SECOND
    for phase in r.partitions:
        projected = phase.projected_files_per_second
        held = phase.bounded_keys_hold
        row(f"projected files/s before a hot key, {phase.workload}", f"≥ {target:,}", f"{projected:,.0f}", projected >= target and held)
    first, last = r.refreshes[0], r.refreshes[-1]
    growth = last.total / first.total
    row(
        f"dashboard refresh at {last.files:,} files vs {first.files:,}",
        "within 10%",
        f"{last.total} vs {first.total} requests ({growth - 1:+.0%})",
        abs(growth - 1) <= 0.10,
    )
    for c in r.comparisons():
        if c.costs.workload in ("12 MP image", "100k-row CSV"):
            row(f"cost vs Lambda-direct, {c.costs.workload}", "≤ 0.5×", f"{c.vs_lambda:.2f}×", c.vs_lambda <= 0.5)
        row(f"fixed overhead per million files, {c.costs.workload}", "≤ $2", f"${c.dropq.fixed_overhead:.2f}", c.dropq.fixed_overhead <= 2)
        overhead = costs.worker_overhead_ms(c.costs)
        row(f"worker CPU outside the pipeline, {c.costs.workload}", "≤ 15 ms", f"{overhead:.1f} ms", overhead <= 15)
    batched = next(c for c in r.producer if c.batched)
    single = next(c for c in r.producer if c.per_event == 1 and not c.batched)
    sends = batched.requests[("sqs", "SendMessageBatch")] / batched.records
    row(
        "producer invocations per file, full batches",
        "≤ 0.1",
        f"{batched.invocations_per_record:.2f}",
        batched.invocations_per_record <= 0.1,
    )
    row("producer SendMessageBatch per file, full batches", "≤ 0.15", f"{sends:.2f}", sends <= 0.15)
    flow = next(c for c in r.costs if c.workload == "small image")
    invoked, sent = flow.invocations / flow.files, flow.per_file("sqs", ("SendMessageBatch",))
    arrivals = f"the real flow, {flow.files} small images arriving at once"
    row(f"producer invocations per file, {arrivals}", "≤ 0.1", f"{invoked:.2f}", invoked <= 0.1)
    row(f"producer SendMessageBatch per file, {arrivals}", "≤ 0.15", f"{sent:.2f}", sent <= 0.15)
    faster = batched.records_per_second / single.records_per_second
    row("producer records/s, batch of 10 vs one a call", "> 1", f"{faster:.2f}", faster > 1)
    return "| target | wanted | measured | met |\n|---|---|---:|---|\n" + "\n".join(rows)


def misses(r: Results) -> str:
    """Why the targets this run misses are missed, from its own figures."""
    largest = max(r.drains)
    naive, dropq, boto3 = r.drains[largest]
    ceiling = boto3.tasks_per_second / naive.tasks_per_second
    efficiency = "; ".join(
        f"{e.pipeline}: moto spent {e.server_cpu_ms / e.files:.0f} ms of CPU per file against the loop's "
        f"{e.loop_cpu_ms / e.files:.0f} ms of work, and the loop needed {e.cpu_ratio:.2f} of the CPU dropq's worker needed"
        for e in r.efficiency
    )
    return f"""- **10× naive Celery** cannot be met against this server: the bare boto3 loop itself, which makes the fewest
  requests possible one after another, is {ceiling:.1f}× naive Celery at a backlog of {largest}. The issue's baseline (about
  21 and 15 tasks/s) was measured against moto as released, whose ReceiveMessage walks the whole queue for every
  message it returns (quadratic in the backlog); infra/local/moto_main.py fixes that, and naive Celery itself then
  runs at {naive.tasks_per_second:.0f} tasks/s.
- **0.8× bare boto3** and **a quarter of naive's CPU**: dropq makes the same requests as the boto3 loop
  ({dropq.requests_per_task:.2f} per task, ReceiveMessage of 10, DeleteMessageBatch of 10, sent without blocking the worker), so
  the gap is Celery's own work per task ({dropq.cpu_ms_per_task:.2f} ms of CPU: decoding, the request, the tracer; its
  two INFO lines per task are off) against the loop's {boto3.cpu_ms_per_task:.2f} ms, on the two CPUs moto also needs.
- **Pipeline efficiency** by time suffers from the local AWS, which runs on the same CPUs: {efficiency}. In AWS the
  requests' work is done by the services, not on the worker's CPUs.
{cost_misses(r)}"""


def cost_misses(r: Results) -> str:
    """Why the cost targets are missed, from the bills' own lines."""
    lines = []
    for c in r.comparisons():
        bill, overhead = c.dropq, c.dropq.fixed_overhead
        if overhead <= 2 and (c.vs_lambda <= 0.5 or c.costs.workload not in ("12 MP image", "100k-row CSV")):
            continue
        parts = {name: usd for name, usd in bill.usd.items() if name != costs.S3}
        parts[costs.FARGATE] = parts.get(costs.FARGATE, 0.0) - bill.work_usd
        biggest = ", ".join(f"{name} ${usd:.2f}" for name, usd in sorted(parts.items(), key=lambda kv: -kv[1]) if usd >= 0.005)
        lines.append(
            f"- **{c.costs.workload}**: a fixed overhead of ${overhead:.2f} per million files ({biggest}), against the work's "
            f"${bill.work_usd:.2f} (Lambda-direct does the same work for ${c.lambda_direct.without_s3:.2f}, invocations included)."
        )
    flow = next(c for c in r.costs if c.workload == "small image")
    over = [c for c in r.costs if costs.worker_overhead_ms(c) > 15]
    if over:
        split = "; ".join(
            f"{c.workload}: {costs.worker_overhead_ms(c):.1f} ms, of which its S3 calls {c.s3_cpu_ms / c.files:.1f} ms" for c in over
        )
        lines.append(
            f"- **Worker CPU outside the pipeline** ({split}) is partly the S3 calls any peer makes (the GET, a PUT "
            "per output: botocore's serialization, signing and checksums, measured as the same calls made plainly); the "
            "rest is dropq's own: two ledger writes, its share of a receive and a delete, Celery's decoding. A split file "
            "decodes its image once per part."
        )
    invoked = flow.invocations / flow.files
    if invoked > 0.1:
        lines.append(
            f"- **Producer invocations in the real flow** ({invoked:.2f} a file): without a batching window a poll takes what "
            "the queue holds, and locally the files arrive about as fast as the runtime's four pollers take them; under "
            "load every poll finds ten or more (as the full batches above show), and a window of a second would force "
            "them at the cost of latency."
        )
    if not lines:
        return ""
    ledger = costs.hot_path_units() * prices.DYNAMODB.write_million
    steady = costs.hot_path_units() * prices.DYNAMODB_PROVISIONED.write_million(costs.PROVISIONED_UTILISATION)
    floor = 2 * prices.DYNAMODB.write_million + prices.SQS.standard_million
    return (
        "\n".join(lines)
        + f"""
- What the overhead is made of: the ledger's writes come first. The hot path's {costs.hot_path_units():g} write units a file
  (below: the claim, which creates the entry and its `recent` index entry, and the outcome, each a conditional write that
  a guarantee of the fault suite needs) cost ${ledger:.2f} per million files on demand alone (${steady:.2f} on provisioned
  capacity, for steady traffic: the table above); the ledger then stores each file for its
  {TOPOLOGY.ledger_ttl_seconds // 86400} days, the worker logs a line, and S3's notification of each file is an SQS
  request. Two writes a file (the claim's lease and the outcome) and S3's notification alone cost ${floor:.2f} on demand."""
    )


def measured_workloads(r: Results, when: str) -> dict[str, capacity.Workload]:
    """The capacity plan's workloads with the figures this run measured: worker CPU per file (the small files' from the
    partition load, the large ones' from pipeline efficiency), ledger write units per file, and the shards' spread."""
    phases = {phase.pipeline: phase for phase in r.partitions}
    efficiency = {e.pipeline: e for e in r.efficiency}
    # A task's cost in the worker's main process (receive, decode, acknowledge): the no-op drain's, at the largest backlog.
    overhead = r.drains[max(r.drains)][1].cpu_ms_per_task / 1000
    indexes = [index.name for index in TOPOLOGY.ledger_table.indexes]

    def ledger(phase: partitions.PhaseLoad) -> dict[str, float]:
        return {
            "table_writes": phase.units("ledger"),
            "index_writes": phase.units("ledger", "recent"),
            "billed_index_writes": sum(phase.units("ledger", index) for index in indexes),
            "hot_key_share": phase.busiest_share,
        }

    def small(name: str, phase: partitions.PhaseLoad, **fields: float) -> capacity.Workload:
        cpu = partitions.worker_cpu_seconds(phase) + overhead
        source = (
            f"{capacity.MEASURED}: make bench, {when}, partition load ({phase.files} files: {cpu * 1000:.1f} ms of worker CPU "
            f"each, of which {overhead * 1000:.2f} ms the no-op task's)"
        )
        return dataclasses.replace(capacity.WORKLOADS[name], cpu_seconds=cpu, source=source, **ledger(phase), **fields)

    def large(name: str, e: pipelines.Efficiency) -> capacity.Workload:
        cpu = e.dropq_cpu_ms / e.files / 1000
        source = f"{capacity.MEASURED}: make bench, {when}, pipeline efficiency ({e.files} files: {cpu * 1000:.0f} ms of worker CPU each)"
        return dataclasses.replace(capacity.WORKLOADS[name], cpu_seconds=cpu, source=source)

    waiting = phases["wait"]
    return {
        "images-small": small("images-small", phases["images"]),
        "images-12mp": large("images-12mp", efficiency["images"]),
        "tables-100k": large("tables-100k", efficiency["tables"]),
        "metadata": small("metadata", phases["metadata"]),
        "wait-60s": small("wait-60s", waiting, wall_seconds=capacity.WORKLOADS["wait-60s"].wall),
    }


def report(r: Results, command: str, sizes: Sizes) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}"
    lat = r.latency
    p50, p95, p99, mean = (f"{seconds * 1000:.0f} ms" for seconds in (lat.percentile(50), lat.percentile(95), lat.percentile(99), lat.mean))
    return f"""# Benchmarks

Measured by `{command}` on {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}, on {machine}, against local moto
servers (infra/local/moto_main.py); SQS and DynamoDB requests are counted at the server. Absolute figures are
noisy on a shared machine: judge by the ratios, which come from one run.

## Targets

{targets(r)}

Where a target is missed, the figures below say why:

{misses(r)}

## Draining a backlog of no-op tasks

Naive Celery is configured as the tutorials do (bench/naive.py: `broker_url="sqs://…"`, default transport options);
dropq's worker is started as a pool's worker is (infra/worker.py). Both run one solo worker (one process, no pool),
so that CPU per task is the worker's own cost; the bare boto3 loop receives 10 with long polling and deletes them
with one DeleteMessageBatch. Each figure is the median of {sizes.rounds} runs.

{throughput_tables(r.drains)}

## Stopping

{stopping.__doc__.split(chr(10) + chr(10))[1].strip().replace("`rounds`", str(sizes.rounds))}

An idle worker cuts its open long poll instead of waiting it out (up to 20 s before): what that poll would have
received is visible again within {RECEIVE_VISIBILITY_SECONDS} s (tasks/broker/visibility.py), which tests/e2e/test_consuming.py proves.
An idle pool's processes end as soon as their shutdown handlers are done, where Celery leaves each to sleep out a
second and its stop thread half a second more (tasks/pool.py), and the stopped worker exits without the interpreter's
last garbage collection over its heap, another half second (tasks/shutdown.py). A busy worker finishes its running
tasks first, gives back at once what it prefetched, then stops its pool as Celery does.

{stopping.stop_table(r.stops)}

## End-to-end latency

The real flow with one warm worker: PutObject, S3 notification, producer handler, SQS, worker, outputs in S3,
ledger. {len(lat.seconds)} small JPEGs (the images pipeline), one every {sizes.latency_interval * 1000:.0f} ms; from just before
the PutObject to the worker's `finished_at`.

| files | p50 | p95 | p99 | mean |
|---:|---:|---:|---:|---:|
| {len(lat.seconds)} | {p50} | {p95} | {p99} | {mean} |

## Pipeline efficiency

The same generated files (photos of 4000×3000, CSV tables of 100,000 rows) through dropq (one worker of
{r.processes} processes, the whole flow) and through a plain `multiprocessing` loop of {r.processes} processes calling the
same pipeline functions on local files. Here the local AWS (moto, pure Python) runs on the same {os.cpu_count()} CPUs as
dropq's worker and spends the CPU shown in the last column on each file's S3, SQS and DynamoDB requests, which the
loop does not make; in AWS that work is not on the worker's machine. CPU per file counts the processes' own CPU.

{efficiency_table(r.efficiency, r.processes)}

## Producer

The real handler, called in process on S3 notifications: S3 events of one record (S3 invoking it) and of ten, and
batches of ten messages of the inbox events queue (the stack's event source mapping under load), in interleaved
slices (moto slows down as its tables grow). The producer writes nothing to the ledger: a batch is its parsing, routing,
messages and a SendMessageBatch per queue.

{producer_table(r.producer)}

## What a million files cost

{cost_section(r)}

## Partition load

The real flow (S3, the producer behind notifications, SQS, workers, ledger) with {r.partitions[0].files} files of each small
workload and {r.partitions[-1].files} files that wait {sizes.waiting_seconds:.0f} s each (lease renewals), every DynamoDB request
metered at the server (infra/local/meter.py) and attributed to its table, index and partition key, with the units AWS
would charge. Measured: units per file, keys, each family's hottest key in the run. Modelled: how evenly a second of
10,000 files spreads over the ledger's {TOPOLOGY.ledger_table.shards} shards
(the real shard function on random keys, the busiest shard of the worst of {partitions.SPREAD_SECONDS} seconds), and the
per-partition limits AWS publishes ({DYNAMODB_PARTITION_WRITES:,} write units, {DYNAMODB_PARTITION_READS:,}
read units a second). The projected rate is where the busiest shard of a file-driven key would reach the write limit;
keys written on a timer are taken at the production pool's full size. Before this change, one key (the `recent`
index's day) took 3.0 writes per file: about 330 files/s.

{partitions.load_table(r.partitions)}

### A dashboard refresh

One tick of `dropq dashboard` (queues, pools, workers, the 50 newest files, an hour of throughput), counted at the
server, with the ledger holding each number of files:

{partitions.refresh_table(r.refreshes)}

{capacity.benchmarks_section(workloads=measured_workloads(r, datetime.now(UTC).strftime("%Y-%m-%d")))}"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks the benchmarks work")
    parser.add_argument("--out", default="BENCHMARKS.md", help="where to write the report (not written with --smoke)")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    state = Path(tempfile.mkdtemp(prefix="dropq-bench-"))

    # A drain per backlog, then idle, stopping, producer, a dashboard refresh, partition load, cost per file, latency, the
    # two pipelines.
    steps = len(sizes.backlogs) + 9
    with click.progressbar(length=steps, label="benchmarks", file=sys.stderr, item_show_func=lambda name: name) as bar:

        def step(name: str, measure: Callable[[], T]) -> T:
            bar.update(0, name)
            result = measure()
            bar.update(1)
            return result

        port = free_port()
        settings = local_settings(port=port, state_dir=str(state / "server"), pipeline_modules=("bench.workloads",))
        server = MotoServer(port, state / "moto.log", record_to=state / "requests.jsonl")
        server.start()
        try:
            provision(settings)
            drains = {
                b: step(f"drain {b} tasks", partial(throughput.compare, settings, server, b, state / f"backlog-{b}", sizes.rounds))
                for b in sizes.backlogs
            }
            idle = step("idle workers", partial(throughput.idle, settings, server, sizes.idle_seconds, state))
            stops = step("stopping", partial(stopping.measure, settings, state / "stops", sizes.rounds))
            producer_costs = step(
                "producer",
                lambda: producer.measure_shapes(settings, server, sizes.producer_records, PRODUCER_SHAPES, sizes.rounds + 2),
            )
        finally:
            server.stop()

        port = free_port()
        refresh_settings = local_settings(port=port, state_dir=str(state / "refresh"))
        meter = state / "refresh-meter.jsonl"
        server = MotoServer(port, state / "refresh-moto.log", record_to=state / "refresh-requests.jsonl", meter_to=meter)
        server.start()
        try:
            provision(refresh_settings)
            refreshes = step("dashboard refresh", partial(partitions.refresh_costs, refresh_settings, server, meter, sizes.refresh_sizes))
        finally:
            server.stop()

        partition_settings = local_settings(port=free_port(), state_dir=str(state / "partitions"), pipeline_modules=("bench.workloads",))
        with LocalCloud(partition_settings, workers={"default": 2}, meter=True) as cloud:
            loads = step(
                "partition load",
                partial(partitions.measure_all, cloud, sizes.partition_files, sizes.waiting_files, sizes.waiting_seconds, not args.smoke),
            )

        cost_settings = local_settings(port=free_port(), state_dir=str(state / "costs"))
        with LocalCloud(cost_settings, workers={"default": 1}, record=True, meter=True) as cloud:
            measured_costs = step("cost per file", partial(costs.measure_all, cloud, args.smoke))

        cloud_settings = local_settings(port=free_port(), state_dir=str(state / "cloud"))
        processes = cloud_settings.topology.pools[0].concurrency
        with LocalCloud(cloud_settings, workers={"default": 1}) as cloud:
            lat = step("latency", partial(latency.measure, cloud, sizes.latency_files, sizes.latency_interval))
            counts = {"images": sizes.images, "tables": sizes.tables}
            efficiency = [
                step(f"{name} pipeline", partial(pipelines.compare, cloud, name, count, processes)) for name, count in counts.items()
            ]

    queues = len(settings.topology.pools[0].queues)
    results = Results(drains, idle, producer_costs, lat, efficiency, processes, queues, loads, refreshes, measured_costs, stops)
    command = "python -m bench.run" + (" --smoke" if args.smoke else "")
    text = report(results, command, sizes)
    print(text)
    if not args.smoke:
        Path(args.out).write_text(text)
        print(f"written to {args.out}", file=sys.stderr)
    print(f"logs in {state}", file=sys.stderr)


if __name__ == "__main__":
    main()

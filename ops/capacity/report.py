"""One plan's report: text for `dropq plan`, Markdown for `dropq plan --markdown` and BENCHMARKS.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra import prices
from infra.scaling import METRIC_PERIOD
from ops.capacity.units import duration, number

if TYPE_CHECKING:
    from ops.capacity.results import Plan, Sample


def _summary(plan: Plan) -> list[tuple[str, str]]:
    pool, first, bottleneck = plan.pool, plan.first_limit, plan.bottleneck
    rows = [
        ("time to drain", _drain(plan)),
        ("first file done", duration(plan.first_done_at) if plan.first_done_at is not None else "-"),
        (
            "wake",
            f"desired 1 at {duration(plan.woke_at)}, running at {duration(plan.first_running_at)}"
            if plan.woke_at is not None and plan.first_running_at is not None
            else "-",
        ),
        ("peak tasks", f"{plan.peak_tasks:,} of max_workers {pool.max_workers:,}"),
        ("peak backlog", f"{number(plan.peak_backlog)} messages"),
        ("oldest message", f"{duration(plan.peak_age)} at most (retention {duration(plan.retention)})"),
        ("expired", f"{plan.expired:,} messages (SQS retention), {plan.expired_events:,} events (the inbox events queue's retention)"),
        ("dead-lettered", f"{plan.dead_lettered:,} (no modelled limit fails a file)"),
        ("throughput", f"at most {number(plan.capacity)} files/s ({plan.capacity_limit})"),
        ("first limit", first.describe() if first else "none"),
        ("bottleneck", f"{bottleneck.name}, for {duration(bottleneck.binding_seconds)}" if bottleneck else "none"),
        ("cost", f"${plan.cost.total:,.2f} at {prices.REGION} list prices of {prices.RECORDED}"),
    ]
    return rows


def _drain(plan: Plan) -> str:
    if plan.drained_at is None:
        return "never: no file was done"
    lost = plan.expired + plan.expired_events
    if lost:
        return f"never: {lost:,} files expired; the last done at {duration(plan.drained_at)}"
    return f"{duration(plan.drained_at)} (the last file done)"


def _heading(plan: Plan) -> tuple[str, str, str]:
    pool, work = plan.pool, plan.workload
    title = f"{plan.arrivals.describe()} of {work.name} on profile {plan.profile}, pool {pool.name} (queue {plan.queue})"
    deployment = (
        f"pool: {pool.cpu / 1024:g} vCPU, {pool.memory_mib / 1024:g} GiB, {pool.concurrency} processes, prefetch {pool.prefetch}, "
        f"{pool.min_workers}..{pool.max_workers} workers, backlog {pool.backlog_per_worker} per worker, "
        f"{'Spot' if pool.spot else 'on demand'}, x86_64; account: {plan.account.vcpu_quota:,} vCPUs, "
        f"Lambda {plan.account.lambda_concurrency:,}, task start {duration(plan.account.task_start_seconds)}, "
        f"S3 prefixes {plan.account.s3_prefixes}"
    )
    wall = f", {duration(work.wall)} wall" if work.wall_seconds is not None else ""
    workload = (
        f"workload: {work.cpu_seconds * 1000:g} ms CPU per file{wall}, {number(work.per_task(pool))} files/s per task, "
        f"{work.s3_puts:g} PUTs + {work.s3_gets:g} GETs, {work.table_writes:g} ledger writes ({work.index_writes:g} on its "
        f"busiest index); {work.source or 'given'}"
    )
    return title, deployment, workload


def _age_rows(plan: Plan, rows: int = 12) -> list[Sample]:
    if not plan.samples:
        return []
    until = plan.drained_at if plan.drained_at is not None else plan.samples[-1].at
    span = max(until, plan.arrivals.seconds, METRIC_PERIOD)
    minutes = next((m for m in (1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 720, 1440) if span / (m * 60) <= rows), 2880)
    every = minutes * 60
    chosen = [s for s in plan.samples if s.at % every == 0 and s.at <= until + every][: rows + 1]
    # The first minute too: the wake's datapoint.
    return chosen if chosen and chosen[0] is plan.samples[0] else [plan.samples[0], *chosen]


def text(plan: Plan) -> str:
    """A short text report: the summary, the limits met, the queue's age over time, the cost."""
    title, deployment, workload = _heading(plan)
    lines = [f"dropq plan: {title}", f"  {deployment}", f"  {workload}", "", plan.verdict(), ""]
    width = max(len(label) for label, _ in _summary(plan))
    lines += [f"  {label:<{width}}  {value}" for label, value in _summary(plan)]
    lines += ["", "limits met (first passed, held its stage back for):"]
    if not plan.limits:
        lines.append("  none")
    for hit in plan.limits:
        held = duration(hit.binding_seconds) if hit.binding_seconds else "not the tightest"
        lines.append(
            f"  {hit.name:<28} {hit.stage:<8} at {duration(hit.first_at):>12}  for {held:<16} "
            f"{number(hit.wanted)} wanted / {number(hit.bound)} {hit.unit}"
        )
    lines += [
        "",
        "queue over time:",
        f"  {'time':>12} {'arrived':>12} {'producer':>11} {'backlog':>11} {'tasks':>7} {'done':>12} {'oldest':>12}",
    ]
    for s in _age_rows(plan):
        lines.append(
            f"  {duration(s.at):>12} {number(s.arrived):>12} {number(s.producer_waiting):>11} {number(s.backlog):>11} "
            f"{s.running:>7,} {number(s.done):>12} {duration(s.oldest_message):>12}"
        )
    lines += ["", f"cost ({prices.REGION} list prices of {prices.RECORDED}, no free tier; uploads and logs not counted):"]
    lines += [f"  {service:<9} {quantity:<44} ${usd:>10,.2f}" for service, quantity, usd in plan.cost.rows]
    lines.append(f"  {'total':<9} {'':<44} ${plan.cost.total:>10,.2f}")
    return "\n".join(lines)


def markdown(plan: Plan) -> str:
    """The same report in Markdown (BENCHMARKS.md's "Capacity plan")."""
    title, deployment, workload = _heading(plan)
    lines = [f"**{title}**", "", f"- {deployment}", f"- {workload}", "", plan.verdict(), "", "| | |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in _summary(plan)]
    lines += ["", "| limit | stage | first passed | held its stage back for | wanted | allowed |", "|---|---|---:|---:|---:|---:|"]
    for hit in plan.limits:
        held = duration(hit.binding_seconds) if hit.binding_seconds else "not the tightest"
        wanted, bound = number(hit.wanted), number(hit.bound)
        lines.append(f"| {hit.name} | {hit.stage} | {duration(hit.first_at)} | {held} | {wanted} | {bound} {hit.unit} |")
    lines += [
        "",
        "| time | arrived | at the producer | backlog | tasks | done | oldest message |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in _age_rows(plan):
        lines.append(
            f"| {duration(s.at)} | {number(s.arrived)} | {number(s.producer_waiting)} | {number(s.backlog)} | {s.running:,} | "
            f"{number(s.done)} | {duration(s.oldest_message)} |"
        )
    lines += ["", "| cost | quantity | USD |", "|---|---|---:|"]
    lines += [f"| {service} | {quantity} | {usd:,.2f} |" for service, quantity, usd in plan.cost.rows]
    lines.append(f"| **total** | | **{plan.cost.total:,.2f}** |")
    return "\n".join(lines)

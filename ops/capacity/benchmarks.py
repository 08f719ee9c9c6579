"""BENCHMARKS.md's "Capacity plan": which plans it shows, and the section it renders of them."""

from __future__ import annotations

from collections.abc import Mapping

from dropq.topology import PROFILES
from infra import quotas
from ops.capacity.report import markdown
from ops.capacity.results import Plan
from ops.capacity.simulation import plan
from ops.capacity.units import duration, number
from ops.capacity.workloads import DEFAULT_BURST, PLACEHOLDER, WORKLOADS, Account, Arrivals, Workload


def benchmarks_section(files: int = DEFAULT_BURST, workloads: Mapping[str, Workload] | None = None) -> str:
    """BENCHMARKS.md's "Capacity plan": a burst of `files` of each workload on production, and of the first elsewhere.

    `workloads` (by default WORKLOADS, whose first is small images) is what the benchmark passes when it has measured
    the figures itself; the first of them is also planned on the other deployments and reported in full.
    """
    workloads = WORKLOADS if workloads is None else workloads
    if not workloads:
        raise ValueError("benchmarks_section: no workloads given; at least 1")
    production, burst = PROFILES["production"], Arrivals.burst(files)
    plans = {name: plan(production, workload, burst) for name, workload in workloads.items()}
    first, lead = next(iter(workloads.items()))
    variants = {
        "default profile (max_workers 4)": plan(PROFILES["default"], lead, burst),
        "production": plans[first],
        "production, outputs over 10 partitioned S3 prefixes": plan(production, lead, burst, account=Account(s3_prefixes=10)),
        "production, an account with 6 Fargate vCPUs": plan(production, lead, burst, account=Account(vcpu_quota=6)),
    }
    return _section(plans, variants, files)


def _row(label: str, result: Plan) -> str:
    first, bottleneck, lost = result.first_limit, result.bottleneck, result.expired + result.expired_events
    drained = "never" if lost else duration(result.drained_at)
    return (
        f"| {label} | {drained} | {result.peak_tasks:,} | {duration(result.peak_age)} | {lost:,} | {first.name if first else '-'} | "
        f"{bottleneck.name if bottleneck else '-'} | {result.cost.total:,.2f} |"
    )


def _section(plans: dict[str, Plan], variants: dict[str, Plan], files: int) -> str:
    """The section: a row per workload's plan and per variant's, the first plan in full, the figures."""
    header = "| drains in | peak tasks | oldest message | expired | first limit | bottleneck | cost (USD) |"
    lines = [
        "## Capacity plan",
        "",
        f"`dropq plan --profile production --burst {files}` (ops/capacity/): a simulation, not a measurement. It runs the",
        "scaling policy of infra/scaling.py (the code the local autoscaler runs) through AWS's delays and limits as",
        "infra/quotas.py models them (the table at the end gives each figure's status and source), on each workload's",
        "figures as measured above, or a placeholder until measured (marked). Prices: infra/prices.py, without free tiers.",
        "",
        f"| workload | CPU per file {header}",
        "|---|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for name, result in plans.items():
        mark = " (placeholder)" if result.workload.source.startswith(PLACEHOLDER) else ""
        lines.append(_row(f"{name}{mark} | {result.workload.cpu_seconds * 1000:.1f} ms", result))
    lines += [
        "",
        f"The same burst of {next(iter(plans))}, elsewhere:",
        "",
        f"| deployment {header}",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    lines += [_row(label, result) for label, result in variants.items()]
    lines += ["", markdown(next(iter(plans.values()))), "", "Modelled figures (infra/quotas.py):", ""]
    lines += ["| figure | value | unit | status | source |", "|---|---:|---|---|---|"]
    lines += [f"| {f.name} | {number(f.value)} | {f.unit} | {f.status} | {f.source} |" for f in quotas.FIGURES]
    return "\n".join(lines) + "\n"

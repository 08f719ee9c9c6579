"""`make bench`: run the benchmarks in one go against one local moto server, print the table, write BENCHMARKS.md.

`python -m bench.run --smoke` runs a tiny version (what `make test` runs to keep the benchmarks working).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.throughput import Drain, compare
from dropq.settings import local_settings
from infra.local.provision import provision
from infra.local.server import MotoServer, free_port
from infra.topology import SQS_MAX_WAIT_SECONDS

BACKLOGS = (200, 1000)
SMOKE_BACKLOGS = (20,)


def throughput_table(results: dict[int, list[Drain]]) -> str:
    """Markdown: one row per consumer and backlog, requests broken down by action."""
    lines = [
        "| backlog | consumer | tasks/s | worker CPU ms/task | SQS requests/task | requests by action |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for backlog, drains in results.items():
        for d in drains:
            actions = ", ".join(f"{action} {count}" for action, count in sorted(d.requests.items()))
            lines.append(
                f"| {backlog} | {d.consumer} | {d.tasks_per_second:.1f} | {d.cpu_ms_per_task:.2f} | {d.requests_per_task:.2f} | {actions} |"
            )
    return "\n".join(lines)


def ratios_table(results: dict[int, list[Drain]]) -> str:
    """Markdown: dropq against its targets (issue 5), measured in the same run."""
    lines = [
        "| backlog | dropq / boto3 tasks/s (target ≥ 0.8) | dropq / naive tasks/s (≥ 10) "
        "| dropq / naive CPU per task (≤ 0.25) | dropq requests/task (≤ 0.25) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for backlog, drains in results.items():
        naive, dropq, boto3 = drains
        lines.append(
            f"| {backlog} | {dropq.tasks_per_second / boto3.tasks_per_second:.2f} | {dropq.tasks_per_second / naive.tasks_per_second:.1f} "
            f"| {dropq.cpu_ms_per_task / naive.cpu_ms_per_task:.2f} | {dropq.requests_per_task:.2f} |"
        )
    return "\n".join(lines)


def report(results: dict[int, list[Drain]], command: str) -> str:
    """BENCHMARKS.md."""
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}"
    return f"""# Benchmarks

Measured by `{command}` on {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}, on {machine}, against a local moto
server; requests are counted at the server. Absolute figures are noisy on a shared machine: compare the ratios,
which come from one run.

## Draining a backlog of no-op tasks

One solo worker (one process, no pool) for both Celery consumers, so that CPU per task is the worker's own cost.

{throughput_table(results)}

{ratios_table(results)}
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks the benchmarks work")
    parser.add_argument("--out", default="BENCHMARKS.md", help="where to write the report (not written with --smoke)")
    args = parser.parse_args(argv)
    backlogs = SMOKE_BACKLOGS if args.smoke else BACKLOGS
    with tempfile.TemporaryDirectory(prefix="dropq-bench-") as scratch:
        state = Path(scratch)
        port = free_port()
        settings = local_settings(port=port, state_dir=str(state), pipeline_modules=("bench.workloads",))
        server = MotoServer(port, state / "moto.log", record_to=state / "requests.jsonl")
        server.start()
        try:
            provision(settings)
            results = {}
            for backlog in backlogs:
                if results:
                    # A stopped worker's last long poll can still take messages put on its queue: let it end.
                    time.sleep(SQS_MAX_WAIT_SECONDS + 1)
                results[backlog] = compare(settings, server, backlog, state)
        finally:
            server.stop()
    command = "python -m bench.run" + (" --smoke" if args.smoke else "")
    text = report(results, command)
    print(text)
    if not args.smoke:
        Path(args.out).write_text(text)
        print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

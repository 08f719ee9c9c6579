"""What `dropq status` and the dashboard show: queues, pools, workers and files, from SQS, ECS and the ledger only.

On SQS Celery has no events and no `inspect`; everything here is read from what exists anyway: queue
attributes, ECS services (desired counts), worker heartbeats and the files' entries in the ledger.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from dropq.counts import FAILED, SUCCEEDED, minute_of
from dropq.deployment import Deployment
from dropq.ledger import Ledger
from dropq.queues import QUEUE_COUNTS, queue_counts

logger = logging.getLogger("dropq")

__all__ = ["QUEUE_COUNTS", "collect_status", "queue_counts", "render_status", "throughput"]

FILE_FIELDS = ("state", "pipeline", "queue", "updated_at", "duration_ms", "outputs", "reason", "attempts")
WORKER_FIELDS = ("pool", "pid", "queues", "concurrency", "active", "tasks_per_minute", "last_seen")
# ECS DescribeServices takes at most this many services per call.
ECS_MAX_SERVICES = 10


def desired_counts(ecs: Any, deployment: Deployment) -> dict[str, int | None]:
    """Each pool's desired worker count from its ECS service (None where the service cannot be read)."""
    names = {service: pool for pool, service in deployment.services.items()}
    desired: dict[str, int | None] = dict.fromkeys(deployment.services)
    services = list(names)
    for start in range(0, len(services), ECS_MAX_SERVICES):
        try:
            described = ecs.describe_services(cluster=deployment.cluster, services=services[start : start + ECS_MAX_SERVICES])
        except ecs.exceptions.ClientError as exc:  # no cluster, or no ecs:DescribeServices: the counts stay unknown
            logger.warning("cannot read the desired worker counts from ECS: %s", exc)
            return desired
        for service in described["services"]:
            desired[names[service["serviceName"]]] = service["desiredCount"]
    return desired


def throughput(counts: Mapping[str, Mapping[str, int]], now: datetime, minutes: int = 60) -> list[dict[str, Any]]:
    """Files finished per minute over the last `minutes` (oldest first), from the per-minute counts (dropq/counts.py):
    succeeded, failed and the failure rate."""
    start = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    series = []
    for offset in range(minutes):
        minute = minute_of(start + timedelta(minutes=offset))
        found = counts.get(minute) or Counter()
        succeeded, failed = found.get(SUCCEEDED, 0), found.get(FAILED, 0)
        rate = round(failed / (succeeded + failed), 3) if failed else 0.0
        series.append({"minute": minute, "succeeded": succeeded, "failed": failed, "failure_rate": rate})
    return series


def collect_status(deployment: Deployment, sqs: Any, ecs: Any, ledger: Ledger, recent: int = 20) -> dict[str, Any]:
    """The status as plain data (what `--json` prints and the dashboard renders)."""
    settings, topology = deployment.settings, deployment.settings.topology
    queues = []
    for spec in topology.queues:
        dead = queue_counts(sqs, settings.queue_url(spec.dlq_name))
        queues.append(
            {
                "name": spec.name,
                "physical_name": settings.physical_name(spec.name),
                **queue_counts(sqs, settings.queue_url(spec.name)),
                "dead_lettered": dead["visible"] + dead["in_flight"],
                "dlq": settings.physical_name(spec.dlq_name),
            }
        )
    workers = [{"hostname": w["sk"]} | {k: w.get(k) for k in WORKER_FIELDS} for w in ledger.workers()]
    desired = desired_counts(ecs, deployment)
    pools = []
    for pool in topology.pools:
        mine = [w for w in workers if w["pool"] == pool.name]
        pools.append(
            {
                "name": pool.name,
                "queues": list(pool.queues),
                "workers": len(mine),
                "desired": desired.get(pool.name),
                "min": pool.min_workers,
                "max": pool.max_workers,
                "concurrency": pool.concurrency,
                "active": sum(w["active"] or 0 for w in mine),
                "tasks_per_minute": round(sum(w["tasks_per_minute"] or 0 for w in mine), 1),
            }
        )
    return {
        "deployment": deployment.name,
        "console_url": deployment.console_url,
        "endpoint_url": settings.endpoint_url,
        "region": settings.region,
        "bucket": settings.bucket,
        "inbox_prefix": topology.inbox_prefix,
        "output_prefix": topology.output_prefix,
        "queues": queues,
        "producer_failures": queue_counts(sqs, settings.queue_url(topology.producer_failure_queue))["visible"],
        "pools": pools,
        "workers": workers,
        "files": newest_versions(ledger.recent(recent)),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def newest_versions(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per key, its newest version (of those given, newest first), with the older ones as `superseded`: a key
    uploaded again is one file whose earlier versions were replaced, not two files."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in sorted(entries, key=lambda e: e.get("updated_at") or "", reverse=True):
        version = {"key": entry["key"], "etag": entry["sk"]} | {k: entry.get(k) for k in FILE_FIELDS}
        if entry["key"] not in rows:
            rows[entry["key"]] = {**version, "superseded": []}
        else:
            rows[entry["key"]]["superseded"].append({k: version[k] for k in ("etag", "state", "updated_at", "reason")})
    return list(rows.values())


def render_status(status: dict[str, Any]) -> str:
    """The status as text for a terminal."""
    lines = [
        f"{status['deployment']}  at {status['at']}",
        f"bucket  s3://{status['bucket']}/{status['inbox_prefix']}  ->  s3://{status['bucket']}/{status['output_prefix']}",
        "",
        f"{'QUEUE':<28}{'VISIBLE':>9}{'IN FLIGHT':>11}{'DELAYED':>9}{'DEAD':>7}",
    ]
    for q in status["queues"]:
        lines.append(f"{q['physical_name']:<28}{q['visible']:>9}{q['in_flight']:>11}{q['delayed']:>9}{q['dead_lettered']:>7}")
    if status["producer_failures"]:
        lines.append(f"producer events that failed every retry: {status['producer_failures']}")
    lines += ["", f"{'POOL':<12}{'WORKERS':>9}{'DESIRED':>9}{'MIN..MAX':>10}{'RUNNING':>9}{'TASKS/MIN':>11}"]
    for p in status["pools"]:
        desired, span = "?" if p["desired"] is None else p["desired"], f"{p['min']}..{p['max']}"
        lines.append(f"{p['name']:<12}{p['workers']:>9}{desired:>9}{span:>10}{p['active']:>9}{p['tasks_per_minute']:>11}")
    lines += ["", f"{'STATE':<11}{'PIPELINE':<10}{'MS':>7}  KEY"]
    for f in status["files"]:
        ms = "" if f.get("duration_ms") is None else str(f["duration_ms"])
        lines.append(f"{f['state']:<11}{f.get('pipeline') or '':<10}{ms:>7}  {f['key']}")
        if f.get("reason"):
            lines.append(f"{'':<30}reason: {f['reason']}")
        for old in f.get("superseded", []):
            lines.append(f"{'':<30}superseded: ETag {old['etag']}, {old['state']} at {old['updated_at']} (uploaded again since)")
    return "\n".join(lines)

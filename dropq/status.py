"""What `dropq status` reports: queues, workers and recent files, from SQS and the ledger only."""

from __future__ import annotations

from typing import Any

from dropq.ledger import Ledger
from dropq.settings import Settings

QUEUE_COUNTS = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


def queue_counts(sqs: Any, url: str) -> dict[str, int]:
    """Messages visible, in flight and delayed in one queue, as SQS approximates them."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(QUEUE_COUNTS.values()))["Attributes"]
    return {name: int(attributes.get(attribute, 0)) for name, attribute in QUEUE_COUNTS.items()}


def collect_status(settings: Settings, sqs: Any, ledger: Ledger, recent: int = 20) -> dict[str, Any]:
    """The status as plain data (what `--json` prints)."""
    topology = settings.topology
    queues = []
    for spec in topology.queues:
        counts = queue_counts(sqs, settings.queue_url(spec.name))
        dead = queue_counts(sqs, settings.queue_url(spec.dlq_name))
        dead_lettered = dead["visible"] + dead["in_flight"]
        queues.append(
            {
                "name": settings.physical_name(spec.name),
                **counts,
                "dead_lettered": dead_lettered,
                "dlq": settings.physical_name(spec.dlq_name),
            }
        )
    producer_failures = queue_counts(sqs, settings.queue_url(topology.producer_failure_queue))
    return {
        "endpoint_url": settings.endpoint_url,
        "region": settings.region,
        "bucket": settings.bucket,
        "inbox_prefix": topology.inbox_prefix,
        "output_prefix": topology.output_prefix,
        "queues": queues,
        "producer_failures": producer_failures["visible"],
        "workers": [{"hostname": w["sk"]} | {k: w.get(k) for k in ("pid", "queues", "concurrency", "last_seen")} for w in ledger.workers()],
        "files": [
            {"key": f["key"], "etag": f["sk"]}
            | {k: f.get(k) for k in ("state", "pipeline", "updated_at", "duration_ms", "outputs", "reason")}
            for f in ledger.recent(recent)
        ],
    }


def render_status(status: dict[str, Any]) -> str:
    """The status as text for a terminal."""
    lines = [
        f"bucket  s3://{status['bucket']}/{status['inbox_prefix']}  ->  s3://{status['bucket']}/{status['output_prefix']}",
        f"endpoint {status['endpoint_url'] or 'AWS ' + status['region']}",
        "",
        f"{'QUEUE':<28}{'VISIBLE':>9}{'IN FLIGHT':>11}{'DELAYED':>9}{'DEAD':>7}",
    ]
    for q in status["queues"]:
        lines.append(f"{q['name']:<28}{q['visible']:>9}{q['in_flight']:>11}{q['delayed']:>9}{q['dead_lettered']:>7}")
    if status["producer_failures"]:
        lines.append(f"producer events that failed every retry: {status['producer_failures']}")
    lines += ["", f"WORKERS ({len(status['workers'])})"]
    lines += [
        f"  {w['hostname']}  pid {w['pid']}  queues {','.join(w['queues'] or [])}  concurrency {w['concurrency']}"
        for w in status["workers"]
    ]
    lines += ["", f"{'STATE':<11}{'PIPELINE':<10}{'MS':>7}  KEY"]
    for f in status["files"]:
        ms = "" if f.get("duration_ms") is None else str(f["duration_ms"])
        lines.append(f"{f['state']:<11}{f.get('pipeline') or '':<10}{ms:>7}  {f['key']}")
        if f.get("reason"):
            lines.append(f"{'':<30}reason: {f['reason']}")
    return "\n".join(lines)

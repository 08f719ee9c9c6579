"""Producer and worker log each event of a file as a JSON line, joined by key and task id; workers publish EMF metrics."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from dropq.ledger import Ledger
from dropq.observe import deployment
from infra.local.cloud import LocalCloud
from tests.conftest import wait_for, wait_for_outcome
from tests.unit.test_observe import emf_errors

pytestmark = pytest.mark.e2e


def json_lines(paths: list[Path]) -> list[dict[str, Any]]:
    """The JSON objects logged in these files, one per complete line (Celery's own lines are not JSON)."""
    found = []
    for path in paths:
        text = path.read_text(errors="replace")
        for line in text[: text.rfind("\n") + 1].splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
    return found


def task_events(state_dir: Path, task_id: str, pattern: str = "worker-*.log") -> list[str]:
    """The events workers logged for one task, in order, once its outcome (logged just after the ledger's) is there."""

    def events() -> list[str]:
        return [r["message"] for r in json_lines(sorted(state_dir.glob(pattern))) if r.get("task_id") == task_id and "message" in r]

    wait_for(lambda: {"succeeded", "failed"} & set(events()), 10, f"task {task_id}'s outcome in its worker's log")
    return events()


def test_a_file_can_be_followed_from_producer_to_worker_and_its_outcome_counted(cloud: LocalCloud, cloud_ledger: Ledger) -> None:
    inbox = f"incoming/observe-{uuid.uuid4().hex[:8]}/"
    good, bad = f"{inbox}notes.txt", f"{inbox}broken.jpg"
    dropped = {good: b"some notes\n", bad: b"\xff\xd8\xff\xe0 not really a jpeg"}
    s3 = cloud.settings.client("s3")
    for key, data in dropped.items():
        s3.put_object(Bucket=cloud.settings.bucket, Key=key, Body=data)
    entries = {key: wait_for_outcome(cloud_ledger, cloud.settings.bucket, key) for key in dropped}
    assert (entries[good]["state"], entries[bad]["state"]) == ("succeeded", "failed")
    task_ids = {key: entry["task_id"] for key, entry in entries.items()}

    state_dir = Path(cloud.state_dir)
    workers = sorted(state_dir.glob("worker-*.log"))

    def metrics_of(key: str) -> dict[str, Any] | None:
        return next((r for r in json_lines(workers) if "_aws" in r and r.get("key") == key), None)

    # The metrics follow the ledger's outcome: wait for both records.
    wait_for(lambda: all(metrics_of(key) for key in dropped), 10, "both files' EMF records")
    worker_lines = json_lines(workers)

    # The producer: a line per batch it handled, counting what it enqueued; none per file (`enqueued` is at DEBUG: the
    # ledger has the file queued with its task id)
    producer_lines = json_lines([state_dir / "lambda.log"])
    assert not [r for r in producer_lines if r.get("key") in dropped], "no line per file"
    handled = [r for r in producer_lines if r.get("message") == "handled" and r.get("service") == "dropq-producer"]
    assert sum(r["enqueued"] for r in handled) >= len(dropped)

    # The worker: the file's outcome, under the task id the ledger has
    def events_of(key: str) -> list[dict[str, Any]]:
        return [r for r in worker_lines if r.get("service") == "dropq-worker" and r.get("key") == key]

    # (a worker's `started` is at DEBUG, off: the ledger has when and where an attempt started)
    assert [(r["message"], r["task_id"], r["etag"]) for r in events_of(good)] == [("succeeded", task_ids[good], entries[good]["sk"])]
    assert [(r["message"], r["task_id"], r["etag"]) for r in events_of(bad)] == [("failed", task_ids[bad], entries[bad]["sk"])]
    assert events_of(bad)[-1]["reason"] == entries[bad]["reason"] and "corrupt or truncated image" in entries[bad]["reason"]

    # The metrics: the outcome line is the file's EMF record, by deployment and pipeline
    service = deployment(cloud.settings.prefix)
    succeeded, failed = metrics_of(good), metrics_of(bad)
    assert succeeded is not None and failed is not None
    assert emf_errors(succeeded) == emf_errors(failed) == []
    assert (succeeded["deployment"], succeeded["pipeline"], succeeded["task_id"]) == (service, "metadata", task_ids[good])
    assert (succeeded["Succeeded"], succeeded["Bytes"], succeeded.get("Failed")) == (1, len(dropped[good]), None)
    assert succeeded["Duration"] == entries[good]["duration_ms"]
    assert (failed["deployment"], failed["pipeline"], failed.get("Succeeded"), failed["Failed"]) == (service, "images", None, 1)
    assert sum(1 for r in worker_lines if "_aws" in r and r.get("key") in dropped) == 2, "one record per file"

    # Celery's own INFO lines per task are off: dropq's lines replace them
    celery_lines = "".join(path.read_text(errors="replace") for path in workers)
    for task_id in task_ids.values():
        assert f"[{task_id}] received" not in celery_lines
        assert f"[{task_id}] succeeded in" not in celery_lines

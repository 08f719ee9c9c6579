"""What the status computes from what it read: throughput per minute, and each worker's tasks per minute."""

from __future__ import annotations

from datetime import UTC, datetime

from dropq.counts import outcome, total
from ops.status import newest_versions, throughput
from tasks.heartbeat import TaskRate


def test_throughput_counts_finished_files_per_minute_with_the_failure_rate() -> None:
    now = datetime(2026, 11, 22, 12, 30, 40, tzinfo=UTC)
    minutes = {
        "2026-11-22T12:30": total([outcome("images", True, 40), outcome("images", True, 90), outcome("tables", False, None)]),
        "2026-11-22T11:31": outcome("metadata", False, None),
        "2026-11-22T11:30": outcome("images", True, 10),  # over an hour ago
    }

    series = throughput(minutes, now)

    assert len(series) == 60 and (series[0]["minute"], series[-1]["minute"]) == ("2026-11-22T11:31", "2026-11-22T12:30")
    assert series[-1] == {"minute": "2026-11-22T12:30", "succeeded": 2, "failed": 1, "failure_rate": 0.333}
    assert series[0] == {"minute": "2026-11-22T11:31", "succeeded": 0, "failed": 1, "failure_rate": 1.0}
    assert sum(m["succeeded"] + m["failed"] for m in series) == 4


def test_tasks_per_minute_is_measured_over_the_last_minute_of_beats() -> None:
    rate = TaskRate()
    assert rate.sample(0, 0) == 0.0
    assert rate.sample(15, 10) == 40.0  # 10 tasks in 15 s
    assert rate.sample(30, 20) == 40.0
    for t in (45, 60, 75, 90):
        rate.sample(t, 20)
    # Nothing started in the last minute: the first beats have left the window
    assert rate.sample(105, 20) == 0.0


def test_versions_of_one_key_are_one_row_the_older_ones_superseded() -> None:
    entries = [
        {"key": "incoming/a.jpg", "sk": "old", "state": "failed", "updated_at": "2026-12-01T10:00:00.000Z", "reason": "truncated"},
        {"key": "incoming/b.csv", "sk": "b1", "state": "succeeded", "updated_at": "2026-12-01T10:30:00.000Z"},
        {"key": "incoming/a.jpg", "sk": "new", "state": "succeeded", "updated_at": "2026-12-01T11:00:00.000Z"},
    ]
    rows = newest_versions(entries)
    assert [(r["key"], r["etag"], r["state"]) for r in rows] == [
        ("incoming/a.jpg", "new", "succeeded"),
        ("incoming/b.csv", "b1", "succeeded"),
    ]
    assert rows[0]["superseded"] == [{"etag": "old", "state": "failed", "updated_at": "2026-12-01T10:00:00.000Z", "reason": "truncated"}]
    assert rows[1]["superseded"] == []

"""The sweep's rule for a file that looks stuck: it may be waiting in its queue as long as the queue holds messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dropq.topology import QueueSpec
from tasks.periodic import stuck_before


def test_a_file_of_an_idle_queue_is_stuck_past_the_deadline_and_of_a_busy_one_only_past_the_queues_retention() -> None:
    queue = QueueSpec(name="default", retention_seconds=4 * 24 * 3600)
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    cutoff = now - timedelta(hours=1)

    assert stuck_before(queue, busy=False, cutoff=cutoff, now=now) == cutoff
    assert stuck_before(queue, busy=True, cutoff=cutoff, now=now) == now - timedelta(days=4), "its message may still be there"
    short = QueueSpec(name="short", retention_seconds=600)
    assert stuck_before(short, busy=True, cutoff=cutoff, now=now) == cutoff, "never later than the deadline itself"

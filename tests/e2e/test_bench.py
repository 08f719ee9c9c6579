"""The benchmarks keep working: a tiny run of `make bench` (numbers are judged in BENCHMARKS.md, not here)."""

from __future__ import annotations

import pytest

from bench.run import main

pytestmark = pytest.mark.e2e


def test_the_benchmark_runs_every_consumer_and_counts_their_requests(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--smoke"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 20 |")]
    by_consumer = {row.split("|")[2].strip(): row for row in rows[:3]}
    assert set(by_consumer) == {"naive Celery", "dropq", "boto3"}
    assert all("ReceiveMessage" in row for row in by_consumer.values()), "requests are counted at the server, by action"
    assert "DeleteMessageBatch" in by_consumer["boto3"]
    assert "DeleteMessageBatch" in by_consumer["dropq"] and "DeleteMessage " not in by_consumer["dropq"], "dropq acks in batches"
    assert len(rows) == 4, "and one row of ratios"

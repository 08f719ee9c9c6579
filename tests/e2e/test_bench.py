"""The benchmarks keep working: a tiny run of `make bench` (numbers are judged in BENCHMARKS.md, not here)."""

from __future__ import annotations

import pytest

from bench.run import main

pytestmark = pytest.mark.e2e


def _rows(text: str, first_cell: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith(f"| {first_cell} |")]


def test_every_benchmark_runs_and_reports_what_it_measured(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--smoke"])
    printed = capsys.readouterr()
    report = printed.out
    assert printed.err.startswith("benchmarks"), "a progress bar (on stderr, the report on stdout)"

    drains = {row[1]: row for row in _rows(report, "20") if len(row) == 6}
    assert set(drains) == {"naive Celery", "dropq", "boto3"}
    assert all("ReceiveMessage" in row[5] for row in drains.values()), "requests are counted at the server, by action"
    assert "DeleteMessageBatch" in drains["dropq"][5] and "DeleteMessage " not in drains["dropq"][5], "dropq acks in batches"

    (latency,) = _rows(report, "5")
    assert all(cell.endswith(" ms") for cell in latency[1:]), latency
    efficiency = {row[0]: row for row in _rows(report, "images") + _rows(report, "tables")}
    assert set(efficiency) == {"images", "tables"} and all(float(row[4]) > 0 for row in efficiency.values())

    (one,), (ten,) = _rows(report, "an S3 event of 1 record"), _rows(report, "a batch of 10 queue messages")
    assert (one[2], one[3]) == ("1.00", "1.00"), "an invocation and a SendMessageBatch per single-record event"
    assert (ten[2], ten[3]) == ("0.10", "0.10"), "one invocation and one SendMessageBatch per batch of ten"
    assert "| a pool scaled to zero | 0 |" in report
    stops = [
        row
        for name in (
            "dropq worker, idle",
            "Celery as in tutorials, idle",
            "dropq worker, busy with 0.5 s tasks",
            "`dropq up`, idle, Ctrl-C",
        )
        for row in _rows(report, name)
    ]
    assert len(stops) == 4 and all(row[1] == "1" and 0 < float(row[2]) <= float(row[3]) for row in stops), stops
    assert "| an idle worker: SIGTERM to exit, worst | ≤ 2 s |" in report
    assert "## Targets" in report and "## What a million files cost" in report
    assert not report.startswith("{"), "no log line in the report"

    # The cost model: a bill per workload beside its peers', counted at the server; plain files store no Celery result,
    # a split file's parts do (their chord reads them)
    workloads = ("small image", "12 MP image", "100k-row CSV", "metadata", "split image (parts in a chord)")
    bills = {name: _rows(report, name) for name in workloads}
    assert all(len(rows) >= 3 for rows in bills.values()), "a bill, its counts and its capacity row, per workload"
    (small_bill, small_counts, small_compute) = bills["small image"]
    assert len(small_bill) == 13 and all(float(cell.strip("*").replace(",", "")) >= 0 for cell in small_bill[1:])
    assert (small_counts[3], small_counts[4]) == ("1.00", "3.00"), "a GET of the input, a PUT per output (two thumbnails, a manifest)"
    assert float(small_counts[13]) > 0, "the S3 calls' own CPU, measured"
    spot, provisioned = float(small_compute[2]), float(small_compute[4])
    assert 0 < provisioned < spot, "the ledger on provisioned capacity costs less for steady traffic"
    assert "small image: dropq-ledger " in report and "dropq-results" not in report.split("small image: dropq-ledger ")[1].split(";")[0]
    assert "dropq-results" in report.split("split image (parts in a chord): dropq-ledger ")[1].split(".\n")[0]
    assert "| **a file** | | | **2** | **1** | |" in report, "the claim (and its `recent` entry) and the outcome: three write units"

    # Partition load: each workload's DynamoDB units by family, counted at the server; a file enters one index shard
    # once (`recent`, at its claim: the producer writes nothing), a long file's renewals touch no index, its entry takes
    # the claim and the outcome, and a refresh costs the same at both ledger sizes.
    loads = {(row[0], row[1]): row for name in ("small images", "metadata", "files of 3 s") for row in _rows(report, name)}
    assert float(loads[("small images", "ledger/recent: shards")][3]) == 1.0
    assert not [key for key in loads if "ledger/open" in key[1]], "no `open` index"
    assert float(loads[("files of 3 s", "ledger/recent: shards")][3]) == 1.0, "a long file's renewals touch no index"
    assert float(loads[("metadata", "ledger: file entries")][3]) == 2.0
    refreshes = _rows(report, "50") + _rows(report, "200")
    assert len(refreshes) == 2 and refreshes[0][1] == refreshes[1][1], refreshes
    assert "## Capacity plan" in report and "| images-small | " in report

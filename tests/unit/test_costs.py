"""The cost model's arithmetic: measured counts per file times list prices, per million files, and the peers alike."""

from __future__ import annotations

from collections import Counter

import pytest

from bench import costs
from bench.producer import ProducerCost
from bench.throughput import Drain
from dropq.topology import TOPOLOGY
from infra import prices

POOL = TOPOLOGY.pools[0]
ON_DEMAND = costs.COMPUTES[0]


def _measured(**changes: object) -> costs.FileCosts:
    figures: dict[str, object] = {
        "workload": "w",
        "pipeline": "images",
        "files": 10,
        "input_bytes": 10_000,
        "requests": Counter({("sqs", "ReceiveMessage"): 1, ("sqs", "DeleteMessageBatch"): 1, ("s3", "GET"): 10, ("s3", "PUT"): 30}),
        "write_units": {"dropq-ledger": 30.0, "dropq-ledger/open": 20.0},
        "read_units": {"dropq-ledger": 5.0},
        "invocations": 1,
        "worker_cpu_ms": 2_000.0,
        "loop_cpu_ms": 1_800.0,
        "loop_seconds": 1.9,
        "log_bytes": 5_000,
        "stored_bytes": 600.0,
    }
    figures.update(changes)
    return costs.FileCosts(**figures)  # type: ignore[arg-type]


# A batch of ten in 50 ms; one record in 20 ms.
BATCH = ProducerCost(per_event=10, records=100, seconds=0.5, requests=Counter(), batched=True)
SINGLE = ProducerCost(per_event=1, records=100, seconds=2.0, requests=Counter())


def test_dropqs_bill_counts_each_service_per_million_files() -> None:
    bill = costs.dropq_bill(_measured(), BATCH, POOL, ON_DEMAND, ledger_ttl_days=90)
    # SQS: 0.2 measured per file, plus S3's notification (1) and the mapping's receive and delete per batch (2 x 0.1)
    assert bill.usd[costs.SQS] == pytest.approx((0.2 + 1 + 0.2) * prices.SQS.standard_million)
    assert bill.usd[costs.DYNAMODB] == pytest.approx(5 * prices.DYNAMODB.write_million + 0.5 * prices.DYNAMODB.read_million)
    # Lambda: 0.1 invocation per file, each 50 ms at 256 MB on arm64
    assert bill.usd[costs.LAMBDA] == pytest.approx(0.1 * (0.2 + 0.05 * 0.25 * prices.LAMBDA.arm64_gb_second * 1e6))
    # Fargate: 0.2 CPU seconds per file on a 1 vCPU / 2 GB task busy 80% of the time
    per_second = (prices.FARGATE_X86.vcpu_hour + 2 * prices.FARGATE_X86.gb_hour) / 3600 / 0.8
    assert bill.usd[costs.FARGATE] == pytest.approx(0.2 * per_second * 1e6)
    assert bill.work_usd == pytest.approx(0.18 * per_second * 1e6), "the loop's CPU is the work"
    assert bill.usd[costs.S3] == pytest.approx((1 * prices.S3.get_thousand + 3 * prices.S3.put_thousand) * 1000)
    assert bill.usd[costs.STORAGE] == pytest.approx(600 / prices.GIB * 90 / 30.4 * prices.DYNAMODB.storage_gb_month * 1e6)
    assert bill.without_s3 == pytest.approx(bill.total - bill.usd[costs.S3])
    assert bill.fixed_overhead == pytest.approx(bill.without_s3 - bill.work_usd)


def test_a_provisioned_ledger_prices_its_units_per_unit_hour_at_the_target_utilisation_and_leaves_results_on_demand() -> None:
    measured = _measured(write_units={"dropq-ledger": 30.0, "dropq-ledger/open": 20.0, "dropq-results": 10.0})
    on_demand = costs.dropq_bill(measured, BATCH, POOL, ON_DEMAND, ledger_ttl_days=90)
    steady = costs.dropq_bill(measured, BATCH, POOL, ON_DEMAND, ledger_ttl_days=90, provisioned=True)

    # A write unit provisioned for an hour serves 3,600 writes, of which 70% are used.
    per_write = 0.00065 / 3600 / 0.7 * 1e6
    per_read = 0.00013 / 3600 / 0.7 * 1e6
    assert steady.usd[costs.DYNAMODB] == pytest.approx(5 * per_write + 0.5 * per_read + 1 * prices.DYNAMODB.write_million)
    assert on_demand.usd[costs.DYNAMODB] == pytest.approx(6 * prices.DYNAMODB.write_million + 0.5 * prices.DYNAMODB.read_million)
    assert {k: v for k, v in steady.usd.items() if k != costs.DYNAMODB} == {k: v for k, v in on_demand.usd.items() if k != costs.DYNAMODB}


def test_a_file_that_succeeds_is_logged_in_its_workers_one_outcome_line_and_nothing_by_the_producer() -> None:
    worker, producer = costs.sample_log_bytes()
    # The outcome line alone (`started` and `enqueued` are at DEBUG), under 70% of what it was with facts said twice
    assert producer == 0 and 0 < worker < costs.OUTCOME_LINE_BYTES_BEFORE * 0.7


def test_spot_costs_a_floor_of_thirty_percent_of_on_demand() -> None:
    spot = next(c for c in costs.COMPUTES if c.spot)
    assert spot.usd_per_cpu_second(POOL) == pytest.approx(0.3 * ON_DEMAND.usd_per_cpu_second(POOL))
    assert not any(c.spot and c.price is prices.FARGATE_ARM64 for c in costs.COMPUTES), "Fargate Spot runs x86 only"


def test_lambda_direct_pays_an_invocation_and_the_loops_cpu_at_one_vcpu() -> None:
    bill = costs.lambda_direct_bill(_measured())
    assert bill.usd[costs.LAMBDA] == pytest.approx(0.2 + 0.18 * 1769 / 1024 * prices.LAMBDA.arm64_gb_second * 1e6)
    assert bill.usd[costs.S3] == costs.dropq_bill(_measured(), BATCH, POOL, ON_DEMAND, 90).usd[costs.S3], "the same S3 requests"
    long = costs.lambda_direct_bill(_measured(loop_seconds=10 * 1000.0))
    assert any("900 s" in note for note in long.notes), "a file longer than Lambda's 15 minutes is said so"


def test_celery_as_in_tutorials_has_no_ledger_and_pays_its_measured_requests_and_cpu() -> None:
    naive = Drain("naive Celery", tasks=100, seconds=10, cpu_ms=500, requests=Counter({"ReceiveMessage": 150, "DeleteMessage": 100}))
    bill = costs.naive_bill(_measured(), naive, SINGLE, POOL, ON_DEMAND)
    assert costs.DYNAMODB not in bill.usd
    assert bill.usd[costs.SQS] == pytest.approx((2.5 + 1) * prices.SQS.standard_million)
    assert bill.usd[costs.LAMBDA] == pytest.approx(0.2 + 0.02 * 0.25 * prices.LAMBDA.arm64_gb_second * 1e6)
    per_second = ON_DEMAND.usd_per_cpu_second(POOL)
    assert bill.usd[costs.FARGATE] == pytest.approx((0.18 + 0.005) * per_second * 1e6)


def test_worker_cpu_outside_the_pipeline_is_the_workers_minus_the_loops() -> None:
    assert costs.worker_overhead_ms(_measured()) == pytest.approx(20.0)
    assert costs.worker_overhead_ms(_measured(loop_cpu_ms=3_000.0)) == 0.0

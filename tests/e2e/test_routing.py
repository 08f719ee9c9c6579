"""Several queues, several pools: big files go to the heavy pool, urgent files overtake a backlog."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from dropq.ledger import ledger_for
from dropq.topology import TOPOLOGY
from infra.local.cloud import LocalCloud
from tests.conftest import wait_for, wait_for_outcome
from tests.faults.inject import drop, send_task

pytestmark = pytest.mark.e2e

BACKLOG = 16
SLEEP_SECONDS = 1.5


@pytest.fixture
def cloud(workloads_cloud: LocalCloud) -> LocalCloud:
    """The local cloud with one worker in each pool, and the test workloads."""
    return workloads_cloud


def noise_png(side: int) -> bytes:
    """An uncompressed PNG of random pixels: side x side x 3 bytes, whatever PNG's compression could do."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def test_a_big_image_is_processed_by_the_heavy_pool_and_a_small_one_by_the_default_pool(cloud: LocalCloud) -> None:
    settings = cloud.settings
    big = noise_png(2400)
    assert len(big) >= 16 * 1024 * 1024, "above the heavy rule's threshold"
    files = {"incoming/routing/big.png": big, "incoming/routing/small.png": noise_png(64)}
    drop(settings, files)
    ledger = ledger_for(settings)
    big_entry = wait_for_outcome(ledger, settings.bucket, "incoming/routing/big.png", timeout=120)
    small_entry = wait_for_outcome(ledger, settings.bucket, "incoming/routing/small.png")
    assert (big_entry["state"], big_entry["queue"], big_entry["pipeline"]) == ("succeeded", "heavy", "images")
    assert big_entry["worker"].startswith("heavy-1@")
    assert (small_entry["state"], small_entry["queue"]) == ("succeeded", "default")
    assert small_entry["worker"].startswith("default-1@")


def test_an_urgent_file_overtakes_a_backlog_of_ordinary_work(cloud: LocalCloud) -> None:
    settings = cloud.settings
    ledger = ledger_for(settings)
    backlog = drop(settings, {f"work/backlog/{i}.txt": str(SLEEP_SECONDS).encode() for i in range(BACKLOG)})
    for ref in backlog.values():
        send_task(settings, ref, "sleep")
    # The backlog keeps the default pool's one worker busy for BACKLOG x SLEEP_SECONDS / concurrency seconds.
    wait_for(lambda: any((ledger.get(settings.bucket, key) or {}).get("state") == "running" for key in backlog), 30, "the backlog to start")

    drop(settings, {"incoming/urgent/now.txt": b"stop the presses"})
    urgent = wait_for_outcome(ledger, settings.bucket, "incoming/urgent/now.txt", timeout=30)
    done = sum((ledger.get(settings.bucket, key) or {}).get("state") == "succeeded" for key in backlog)

    assert (urgent["state"], urgent["queue"], urgent["pipeline"]) == ("succeeded", "urgent", "metadata")
    assert urgent["worker"].startswith("urgent-1@")
    assert done <= BACKLOG // 2, f"the urgent file finished after {done} of {BACKLOG} ordinary files: it waited behind them"
    for key in backlog:
        assert wait_for_outcome(ledger, settings.bucket, key, timeout=60)["state"] == "succeeded"


def test_every_queue_of_the_topology_has_a_pool_of_its_own_locally(cloud: LocalCloud) -> None:
    assert [workers.pool.name for workers in cloud.pools] == [pool.name for pool in TOPOLOGY.pools]
    assert all(workers.running == 1 for workers in cloud.pools)
    logs = {path.name for path in Path(cloud.state_dir).glob("worker-*.log")}
    assert {f"worker-{pool.name}-1.log" for pool in TOPOLOGY.pools} <= logs

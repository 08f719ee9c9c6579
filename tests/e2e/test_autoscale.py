"""The local autoscaler runs the stack's scaling policy on real worker processes: up with a backlog, back to zero idle."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from dropq.ledger import ledger_for
from dropq.settings import local_settings
from dropq.topology import TOPOLOGY
from infra.local.cloud import LocalCloud
from infra.local.server import free_port
from tests.conftest import wait_for, wait_for_outcome

pytestmark = pytest.mark.e2e

FILES = 60
MAX_WORKERS = 3


@pytest.fixture
def scaling_cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    """A local cloud whose one pool scales between 0 and 3 workers, aiming at 5 messages per worker."""
    pool = dataclasses.replace(TOPOLOGY.pools[0], min_workers=0, max_workers=MAX_WORKERS, backlog_per_worker=5)
    settings = local_settings(
        port=free_port(), state_dir=str(tmp_path), topology=dataclasses.replace(TOPOLOGY, pools=(pool, *TOPOLOGY.pools[1:]))
    )
    # The stack's policy with cooldowns short enough for a test (AWS: 60 s out, 300 s in).
    cooldowns = {"scale_out_cooldown": 1.0, "scale_in_cooldown": 3.0, "wake_cooldown": 5.0}
    with LocalCloud(settings, autoscale_interval=0.5, cooldowns=cooldowns) as cloud:
        yield cloud


def test_pool_grows_to_its_maximum_with_a_backlog_drains_it_and_returns_to_zero(scaling_cloud: LocalCloud) -> None:
    autoscaler = scaling_cloud.autoscalers[0]
    workers = scaling_cloud.pools[0]
    assert workers.running == 0, "an idle pool with min_workers=0 runs no worker"

    settings = scaling_cloud.settings
    s3 = settings.client("s3")
    keys = [f"incoming/scale/{i:03}.txt" for i in range(FILES)]
    for key in keys:
        s3.put_object(Bucket=settings.bucket, Key=key, Body=f"file {key}\n".encode())

    wait_for(lambda: workers.running == MAX_WORKERS, 60, f"the pool to grow to {MAX_WORKERS} workers")
    ledger = ledger_for(settings)
    entries = [wait_for_outcome(ledger, settings.bucket, key, timeout=120) for key in keys]
    assert [e["state"] for e in entries] == ["succeeded"] * FILES
    assert len({e["worker"] for e in entries}) > 1, "the backlog was shared by several worker processes"

    wait_for(lambda: workers.running == 0, 60, "the pool to scale back to zero once idle")
    history = list(autoscaler.history)
    assert max(o.workers for o in history) == MAX_WORKERS, "never above the pool's maximum"
    assert all(o.workers > 0 for o in history if o.backlog > 0), "never down to zero while messages wait or are in flight"
    assert history[-1].backlog == 0

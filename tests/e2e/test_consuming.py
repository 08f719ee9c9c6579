"""How a worker consumes SQS (tasks/broker/): full receives, batched deletes, and a clean stop.

Each test runs a real `celery worker` of the default pool, as deployed, against its own moto server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.throughput import fill
from bench.workloads import NOOP_TASK
from dropq.settings import Settings, local_settings
from dropq.topology import RECEIVE_VISIBILITY_SECONDS
from infra.local.processes import start_process, stop_process
from infra.local.provision import provision
from infra.local.server import MotoServer, free_port, recorded_actions
from infra.worker import worker_arguments, worker_environment
from ops.status import queue_counts
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

CELERY = str(Path(sys.executable).with_name("celery"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Settings, MotoServer]]:
    port = free_port()
    moto = MotoServer(port, tmp_path / "moto.log", record_to=tmp_path / "requests.jsonl")
    moto.start()
    try:
        settings = local_settings(port=port, state_dir=str(tmp_path), pipeline_modules=("bench.workloads",))
        provision(settings)
        yield settings, moto
    finally:
        moto.stop()


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    pool = settings.topology.pools[0]
    env = {**os.environ, **settings.environment(), **worker_environment(pool)}
    worker = start_process([CELERY, *worker_arguments(pool, "w@%h")], log, env)
    wait_for(lambda: "ready." in (log.read_text(errors="replace") if log.exists() else ""), 60, "the worker to start")
    return worker


def test_a_worker_receives_ten_at_a_time_and_deletes_ten_at_a_time(server: tuple[Settings, MotoServer], tmp_path: Path) -> None:
    settings, moto = server
    sqs, url = settings.client("sqs"), settings.queue_url("default")
    fill(sqs, url, NOOP_TASK, "default", 100)
    moto.reset_recording()
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        wait_for(lambda: sum(queue_counts(sqs, url).values()) == 0, 60, "the backlog to drain")
    finally:
        stop_process(worker, timeout=60)
    sqs_requests = {action: n for (service, action), n in recorded_actions(moto.record_to or Path()).items() if service == "sqs"}
    assert "DeleteMessage" not in sqs_requests, "acknowledged in batches"
    # 100 messages: ten receives and ten deletes of ten when every batch is full; a few partial ones are fine.
    assert sqs_requests["DeleteMessageBatch"] <= 14, sqs_requests
    assert sqs_requests["ReceiveMessage"] <= 16, sqs_requests


def test_an_idle_worker_cuts_its_long_poll_and_what_it_would_have_received_is_not_held(
    server: tuple[Settings, MotoServer], tmp_path: Path
) -> None:
    settings, moto = server
    sqs, url = settings.client("sqs"), settings.queue_url("default")
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    receives = lambda: recorded_actions(moto.record_to or Path()).get(("sqs", "ReceiveMessage"), 0)  # noqa: E731
    try:
        # Given an idle worker with a 20 s long poll open at SQS,
        wait_for(receives, 30, "the worker's first long poll")
        # when it is told to stop, it exits without waiting that poll out (how soon: `make bench`, "Stopping"),
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
    finally:
        stop_process(worker, timeout=10)
    assert receives() == 1
    # and a message sent in what is left of the poll's 20 s, which SQS hands to it although nobody reads the answer,
    fill(sqs, url, NOOP_TASK, "default", 1)

    # is visible again within seconds (a receive hides what it brings for RECEIVE_VISIBILITY_SECONDS), well before the
    # queue's visibility timeout (60 s), which is what kept it hidden when the poll itself hid what it took.
    bound = settings.topology.queue("default").visibility_timeout / 3
    assert bound > RECEIVE_VISIBILITY_SECONDS + 5

    def received() -> list[dict]:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["ApproximateReceiveCount"])
        return batch.get("Messages", [])

    (message,) = wait_for(received, bound, "the message to be visible again")
    assert message["Attributes"]["ApproximateReceiveCount"] == "2", "taken by the cut poll first"

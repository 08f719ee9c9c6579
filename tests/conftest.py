"""Shared fixtures: recorded events, a bare moto server with the topology provisioned, and the local cloud."""

from __future__ import annotations

import base64
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dropq.ledger import Ledger, ledger_for
from dropq.protocol import decode_task_message
from dropq.settings import ENDPOINT_URL, LOCAL_ENDPOINT, Settings, WebhookEndpoint, local_settings
from infra.local.cloud import LocalCloud
from infra.local.provision import provision
from infra.local.server import MotoServer, free_port
from tests.webhook_server import WebhookReceiver

# Settings name no endpoint by default (a process without one talks to AWS): this test process, and the workers,
# CLIs and runtimes it starts without settings of their own, talk to the local cloud.
os.environ.setdefault(ENDPOINT_URL, LOCAL_ENDPOINT)

EVENTS = Path(__file__).parent / "events"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A pytest-xdist worker finished: the fault suite's rows it accounted for join the table printed at the end."""
    from tests.faults import conftest as faults

    faults.add_rows(getattr(node, "workeroutput", {}).get("fault_rows", []))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault suite's table, whichever process ran its scenarios."""
    from tests.faults import conftest as faults

    faults.print_table(terminalreporter)


def load_event(name: str) -> dict[str, Any]:
    """A recorded S3 event from tests/events/."""
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="session")
def moto_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A moto server (no workers, no producer runtime) with the topology provisioned."""
    state = tmp_path_factory.mktemp("moto")
    port = free_port()
    server = MotoServer(port, state / "moto.log")
    server.start()
    settings = local_settings(port=port, state_dir=str(state))
    try:
        provision(settings)
        yield settings
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """The whole local cloud, as `dropq up` runs it (moto, the producer behind S3 notifications, a default worker), recording requests."""
    state = tmp_path_factory.mktemp("cloud")
    with LocalCloud(local_settings(port=free_port(), state_dir=str(state)), workers={"default": 1}, record=True) as running:
        yield running


# The workloads cloud's longest SQS delay: short, so that a test sees a countdown take several hops in seconds.
TEST_HOP_SECONDS = 2
# The workloads cloud's table chunk size (the smallest allowed), so that a table of a few hundred KiB is split.
TEST_CHUNK_BYTES = 64 * 1024
# The workloads cloud's webhook: its secret, and its rate limit (low enough for a test to see it).
TEST_WEBHOOK_SECRET = "test-webhook-secret"
TEST_WEBHOOK_RATE = 4


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """An HTTP server on 127.0.0.1 that records webhooks and fails on purpose (tests/webhook_server.py)."""
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def workloads_cloud(tmp_path_factory: pytest.TempPathFactory, webhook_receiver: WebhookReceiver) -> Iterator[LocalCloud]:
    """The local cloud with one worker per pool, the test workloads (tests/workloads.py), 2-second delay hops, every image
    split by size and small table chunks, and its `notify` webhook pointing at the test receiver."""
    state = tmp_path_factory.mktemp("workloads")
    endpoint = WebhookEndpoint("notify", f"{webhook_receiver.url}/", TEST_WEBHOOK_SECRET, rate_limit=f"{TEST_WEBHOOK_RATE}/s")
    settings = local_settings(
        port=free_port(),
        state_dir=str(state),
        pipeline_modules=("tests.workloads",),
        delay_hop_seconds=TEST_HOP_SECONDS,
        table_chunk_bytes=TEST_CHUNK_BYTES,
        image_split_bytes=0,
        webhook_endpoints=(endpoint,),
    )
    with LocalCloud(settings, workers=1, record=True) as running:
        yield running


def sent_messages(recording: Path) -> list[dict[str, Any] | None]:
    """Every message sent to SQS in a moto recording (SendMessage and SendMessageBatch), decoded as a Celery task
    message, or None for one that is not a task (an event, a failure record)."""
    sent: list[dict[str, Any] | None] = []
    for line in recording.read_text().splitlines() if recording.exists() else ():
        request = json.loads(line)
        target = {k.lower(): v for k, v in request["headers"].items()}.get("x-amz-target", "")
        if target not in ("AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch"):
            continue
        params = json.loads(base64.b64decode(request["body"]) if request.get("body_encoded") else request["body"])
        for body in [params["MessageBody"]] if "MessageBody" in params else [e["MessageBody"] for e in params["Entries"]]:
            try:
                sent.append(decode_task_message(body))
            except ValueError:
                sent.append(None)
    return sent


def sent_tasks(recording: Path) -> Counter[str]:
    """The Celery task names of every message sent to SQS in a moto recording."""
    return Counter(message["headers"]["task"] if message else "(not a task)" for message in sent_messages(recording))


def drain(settings: Settings, queue: str) -> list[dict[str, Any]]:
    """Receive and delete every visible message of a queue; return them."""
    sqs = settings.client("sqs")
    url = settings.queue_url(queue)
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        messages += batch
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
    return messages


def purge_queues(settings: Settings) -> None:
    """Empty every queue of the topology (isolates tests that count messages; PurgeQueue allows one call a minute)."""
    names = [q.name for q in settings.topology.queues] + [q.dlq_name for q in settings.topology.queues]
    for name in [*names, settings.topology.producer_failure_queue]:
        drain(settings, name)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_outcome(ledger: Ledger, bucket: str, key: str, timeout: float = 60) -> dict[str, Any]:
    """The ledger entry of a key once it has succeeded or failed."""

    def settled() -> dict[str, Any] | None:
        entry = ledger.get(bucket, key)
        # moto's UpdateItem is not atomic against a concurrent read: an entry may be seen half-written.
        return entry if entry and entry.get("state") in ("succeeded", "failed") else None

    return wait_for(settled, timeout, f"{key} to succeed or fail")


@pytest.fixture(scope="session")
def cloud_ledger(cloud: LocalCloud) -> Ledger:
    """The local cloud's ledger."""
    return ledger_for(cloud.settings)

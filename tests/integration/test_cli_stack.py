"""The CLI against a deployed stack by its name: a CloudFormation stack in moto whose outputs name resources provisioned
there (under the stack's own prefix), as `cdk deploy` leaves them in AWS."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dropq.deployment import (
    BUCKET_OUTPUT,
    CLUSTER_OUTPUT,
    DASHBOARD_OUTPUT,
    PREFIX_OUTPUT,
    Deployment,
    from_stack,
    local_deployment,
    service_output,
)
from dropq.ledger import QUEUED, ledger_for
from dropq.objects import ObjectRef
from dropq.protocol import decode_task_message
from dropq.settings import Settings
from infra.local.provision import provision_queues, provision_services, provision_tables
from infra.local.server import free_port, port_is_free
from ops.cli import main
from ops.dashboard.monitor import Monitor
from tests.conftest import drain

STACK = "shop"


@pytest.fixture(scope="module")
def stack(moto_settings: Settings) -> Iterator[Deployment]:
    """The stack `shop`: its queues, tables, bucket and ECS services in moto, and a CloudFormation stack with their outputs."""
    settings = replace(moto_settings, prefix=f"{STACK}-", bucket=f"{STACK}-files-{uuid.uuid4().hex[:8]}")
    provision_queues(settings.client("sqs"), settings)
    provision_tables(settings.client("dynamodb"), settings)
    provision_services(settings.client("ecs"), settings)
    settings.client("s3").create_bucket(Bucket=settings.bucket)
    names = local_deployment(settings)
    outputs = {
        BUCKET_OUTPUT: settings.bucket,
        PREFIX_OUTPUT: settings.prefix,
        CLUSTER_OUTPUT: names.cluster,
        DASHBOARD_OUTPUT: "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards:name=shop-dropq",
        **{service_output(pool): service for pool, service in names.services.items()},
    }
    template = {
        "Resources": {"Alarms": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation = settings.client("cloudformation")
    cloudformation.create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    yield from_stack(STACK, moto_settings)
    cloudformation.delete_stack(StackName=STACK)


def dropq(moto_settings: Settings, *args: str) -> Result:
    env = {**moto_settings.environment(), "DROPQ_PREFIX": "", "DROPQ_BUCKET": "", "DROPQ_STACK": STACK}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_the_stack_outputs_name_its_resources(stack: Deployment) -> None:
    assert stack.settings.prefix == "shop-" and stack.settings.bucket.startswith("shop-files-")
    assert stack.settings.account_id == "123456789012"
    assert stack.services == {"default": "shop-pool-default", "heavy": "shop-pool-heavy", "urgent": "shop-pool-urgent"}


def test_status_reads_the_stacks_queues_pools_and_files(moto_settings: Settings, stack: Deployment) -> None:
    settings = stack.settings
    drain(settings, "heavy")
    settings.client("sqs").send_message(QueueUrl=settings.queue_url("heavy"), MessageBody="waiting")
    settings.client("ecs").update_service(cluster=stack.cluster, service=stack.services["heavy"], desiredCount=2)

    result = dropq(moto_settings, "status", "--json")

    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["deployment"] == STACK and status["bucket"] == settings.bucket
    queues = {q["physical_name"]: q for q in status["queues"]}
    assert set(queues) == {"shop-default", "shop-heavy", "shop-urgent"}
    assert queues["shop-heavy"]["visible"] == 1
    assert {p["name"]: p["desired"] for p in status["pools"]} == {"default": 0, "heavy": 2, "urgent": 0}
    text = dropq(moto_settings, "status").output
    assert text.startswith(f"{STACK}  at ") and "shop-heavy" in text


def test_put_uploads_many_files_to_the_stacks_inbox_with_a_progress_bar(moto_settings: Settings, stack: Deployment, tmp_path: Path) -> None:
    files = []
    for index in range(12):
        path = tmp_path / f"part-{index}.csv"
        path.write_text(f"n\n{index}\n")
        files.append(str(path))

    result = dropq(moto_settings, "put", "--prefix", "batch", *files)

    assert result.exit_code == 0, result.output
    assert "uploading 12 files" in result.output
    assert result.output.rstrip().endswith(f"12 files uploaded to s3://{stack.settings.bucket}/incoming/batch/")
    listed = stack.settings.client("s3").list_objects_v2(Bucket=stack.settings.bucket, Prefix="incoming/batch/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(f"incoming/batch/part-{i}.csv" for i in range(12))


def test_dlq_list_and_redrive_work_on_the_stacks_queues(moto_settings: Settings, stack: Deployment) -> None:
    settings, sqs = stack.settings, stack.settings.client("sqs")
    drain(settings, "default")
    drain(settings, "default-dlq")
    sqs.send_message(QueueUrl=settings.queue_url("default-dlq"), MessageBody="not a task")

    listed = dropq(moto_settings, "dlq", "list", "--queue", "default")
    assert listed.exit_code == 0 and "shop-default-dlq: 1 message(s)" in listed.output

    moved = dropq(moto_settings, "dlq", "redrive", "--queue", "default")
    assert moved.output.strip() == "shop-default: 1 message(s) moved back from its dead-letter queue"
    assert [m["Body"] for m in drain(settings, "default")] == ["not a task"]


def test_retry_queues_a_failed_file_of_the_stack_again(moto_settings: Settings, stack: Deployment) -> None:
    settings = stack.settings
    drain(settings, "default")
    ledger = ledger_for(settings)
    key = f"incoming/retry/{uuid.uuid4().hex}.txt"
    ref = ObjectRef(bucket=settings.bucket, key=key, etag=uuid.uuid4().hex, size=10)
    claim = ledger.claim(ref, "metadata", "t1", worker="w", lease_seconds=30)
    assert claim.owner and ledger.mark_failed(ref, claim.owner, "gave up")

    result = dropq(moto_settings, "retry", key)

    assert result.exit_code == 0, result.output
    entry = ledger.get(settings.bucket, key)
    assert entry["state"] == QUEUED and entry.get("reason") is None
    assert result.output.strip() == f"{key}: queued again on shop-default (task {entry['task_id']})"
    (message,) = drain(settings, "default")
    assert decode_task_message(message["Body"])["body"]["kwargs"]["key"] == key
    # A queued file's message is sent again (its first may be lost): whichever comes first is claimed, the other skipped
    again = dropq(moto_settings, "retry", key)
    assert again.exit_code == 0 and (ledger.get(settings.bucket, key) or {})["state"] == QUEUED, again.output
    assert [decode_task_message(m["Body"])["body"]["kwargs"]["key"] for m in drain(settings, "default")] == [key]
    # A file that is running is not retried, and the reason says so.
    assert ledger.claim(ref, "metadata", "t2", worker="w", lease_seconds=30).acquired
    running = dropq(moto_settings, "retry", key)
    assert running.exit_code == 1 and f"{key} is running and its lease is live: it runs now, not failed" in running.output
    # One whose worker died with it (its lease ran out; its message dead-lettered, say) has its message sent again
    dead = ObjectRef(bucket=settings.bucket, key=f"incoming/retry/{uuid.uuid4().hex}.txt", etag=uuid.uuid4().hex, size=10)
    assert ledger.claim(dead, "metadata", "t1", worker="gone", lease_seconds=0).acquired
    resent = dropq(moto_settings, "retry", dead.key)
    assert resent.exit_code == 0, resent.output
    assert [decode_task_message(m["Body"])["body"]["kwargs"]["key"] for m in drain(settings, "default")] == [dead.key]


def test_an_unknown_stack_is_named(moto_settings: Settings) -> None:
    result = CliRunner().invoke(main, ["--stack", "nope", "status"], env=moto_settings.environment())
    assert result.exit_code == 1 and "no stack 'nope'" in result.output


def test_the_dashboard_of_a_stack_fills_the_last_hour_from_cloudwatch(stack: Deployment) -> None:
    # Given SQS's metrics for the stack's default queue in CloudWatch, ten minutes ago
    settings = stack.settings
    at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    settings.client("cloudwatch").put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": "shop-default"}],
                "Timestamp": at,
                "Value": 42,
            },
            {
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": "shop-default-dlq"}],
                "Timestamp": at,
                "Value": 3,
            },
        ],
    )
    monitor = Monitor(stack, interval=60).start()
    try:
        depths = monitor.view()["depths"]
    finally:
        monitor.stop()
    then = next(d for d in depths if d["at"] == at.isoformat(timespec="seconds"))
    assert then["queues"]["default"]["visible"] == 42 and then["queues"]["default"]["dead_lettered"] == 3
    assert depths[-1]["at"] > then["at"]  # and its own sample of now


def test_status_watch_refreshes_in_place_until_ctrl_c(moto_settings: Settings, stack: Deployment) -> None:
    # A terminal: `--watch` clears the screen before each reading
    env = {**os.environ, **moto_settings.environment(), "DROPQ_PREFIX": "", "DROPQ_STACK": STACK, "TERM": "xterm"}
    leader, follower = pty.openpty()
    dropq_bin = str(Path(sys.executable).with_name("dropq"))
    watch = subprocess.Popen(
        [dropq_bin, "status", "--watch", "--interval", "0.3"], stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    screen = b""
    try:
        deadline = time.monotonic() + 60
        while screen.count(b"every 0.3s; Ctrl-C stops") < 3 and time.monotonic() < deadline:
            if select.select([leader], [], [], 1)[0]:
                screen += os.read(leader, 65536)
    finally:
        watch.send_signal(signal.SIGINT)
        # Read on while it stops: a terminal nobody reads fills up, and its last words would block it for ever.
        deadline = time.monotonic() + 30
        while watch.poll() is None and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.2)[0]:
                try:
                    screen += os.read(leader, 65536)
                except OSError:  # EIO: it has closed its side of the terminal
                    break
        if watch.poll() is None:
            watch.kill()
        code = watch.wait(timeout=5)
        os.close(leader)
    assert code != -signal.SIGKILL, f"still running 30 s after Ctrl-C; its terminal last showed {screen[-800:]!r}"
    assert screen.count(b"every 0.3s; Ctrl-C stops") >= 3
    assert screen.count(b"\x1b[2J") >= 3  # each reading replaces the one before
    assert code == 0


def test_the_dashboard_command_serves_the_stack_until_ctrl_c(moto_settings: Settings, stack: Deployment) -> None:
    port = free_port()
    env = {**os.environ, **moto_settings.environment(), "DROPQ_PREFIX": "", "DROPQ_STACK": STACK}
    command = [str(Path(sys.executable).with_name("dropq")), "dashboard", "--port", str(port), "--interval", "1"]
    board = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = board.stdout.readline() if board.stdout else ""
        assert first == f"dashboard of {STACK}: http://127.0.0.1:{port}/\n"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=30) as response:
            state = json.load(response)
        assert state["deployment"] == STACK and state["bucket"] == stack.settings.bucket
        assert [q["physical_name"] for q in state["queues"]] == ["shop-default", "shop-heavy", "shop-urgent"]
    finally:
        board.send_signal(signal.SIGINT)
        output, _ = board.communicate(timeout=30)
    assert board.returncode == 0, output
    assert port_is_free(port)

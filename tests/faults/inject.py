"""What the fault-injection suite does to the local cloud: drop files, repeat events, kill workers, send poison."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from dropq.objects import ObjectRef
from dropq.protocol import PROCESS_TASK, build_task_message
from dropq.settings import Settings
from infra.local.cloud import LocalCloud
from infra.local.provision import provision_bucket


def drop(settings: Settings, files: dict[str, bytes], s3: Any = None) -> dict[str, ObjectRef]:
    """Upload files (keys below the inbox trigger the producer); return what S3 stored."""
    s3 = s3 or settings.client("s3")
    refs = {}
    for key, body in files.items():
        response = s3.put_object(Bucket=settings.bucket, Key=key, Body=body)
        refs[key] = ObjectRef(settings.bucket, key, response["ETag"].strip('"'), len(body), response.get("VersionId"))
    return refs


def drop_with_repeated_events(settings: Settings, files: dict[str, bytes], times: int) -> None:
    """Upload files and deliver each of S3's real notifications `times` times, as S3 and Lambda retries may."""
    sqs, s3 = settings.client("sqs"), settings.client("s3")
    capture = sqs.create_queue(QueueName="dropq-fault-capture")["QueueUrl"]
    capture_arn = sqs.get_queue_attributes(QueueUrl=capture, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=settings.bucket,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": capture_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    try:
        drop(settings, files)
        events: list[str] = []
        while len(events) < len(files):
            events += _drain_url(sqs, capture)
    finally:
        events_url = provision_bucket(s3, sqs, settings)
    for body in events:
        for _ in range(times):
            sqs.send_message(QueueUrl=events_url, MessageBody=body)


def _drain_url(sqs: Any, url: str) -> list[str]:
    bodies = []
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
        bodies.append(message["Body"])
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def send_task(settings: Settings, ref: ObjectRef, pipeline: str, queue_url: str | None = None, queue: str = "default") -> str:
    """Enqueue a `dropq.process` message for a stored object on `queue`, as the producer does; return the task id."""
    task_id, body = build_task_message(PROCESS_TASK, queue, {**ref.to_dict(), "pipeline": pipeline})
    settings.client("sqs").send_message(QueueUrl=queue_url or settings.queue_url(queue), MessageBody=body)
    return task_id


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def poison_messages(bucket: str) -> dict[str, str]:
    """One SQS body of each kind of message no worker can run, by kind."""
    _, unknown = build_task_message("dropq.no_such_task", "default", {"bucket": bucket, "key": "incoming/x.txt"})
    _, missing = build_task_message(PROCESS_TASK, "default", {"bucket": bucket, "pipeline": "metadata"})
    _, oversized = build_task_message(PROCESS_TASK, "default", {"bucket": bucket, "padding": "x" * 100_000})
    return {
        "not base64": "this is not a Celery message at all",
        "base64, not JSON": _b64(b"{not json"),
        "JSON, no task": _b64(json.dumps({"body": _b64(b"[]"), "content-type": "application/json", "headers": {}}).encode()),
        "JSON body not JSON": _b64(
            json.dumps(
                {
                    "body": _b64(b"{broken"),
                    "content-encoding": "utf-8",
                    "content-type": "application/json",
                    "headers": {"task": PROCESS_TASK, "id": "poison-1", "lang": "py"},
                    "properties": {"delivery_info": {"exchange": "", "routing_key": "default"}, "body_encoding": "base64"},
                }
            ).encode()
        ),
        "unknown task": unknown,
        "missing fields": missing,
        "oversized": oversized,
    }


def pool_children(pid: int) -> list[int]:
    """The pool processes a worker forked (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def kill_worker(cloud: LocalCloud, number: int) -> None:
    """SIGKILL a whole worker (its container crashed), then start a new one, as ECS replaces a task."""
    workers = cloud.pools[0]
    process = workers.processes[number]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    workers.scale_to(cloud.pinned(workers.pool.name) or 1)


def kill_pool_child(cloud: LocalCloud, number: int) -> bool:
    """SIGKILL one pool process of a worker (out of memory, say); False if it had none."""
    children = pool_children(cloud.pools[0].processes[number].pid)
    if not children:
        return False
    os.kill(children[0], signal.SIGKILL)
    return True


def dropq(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `dropq` CLI against the cloud."""
    command = [str(Path(sys.executable).with_name("dropq")), *args]
    return subprocess.run(command, env={**os.environ, **settings.environment()}, capture_output=True, text=True, timeout=120, check=True)

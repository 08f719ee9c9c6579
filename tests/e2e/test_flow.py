"""The whole flow on the local cloud: S3 notification -> producer -> SQS -> real celery worker -> outputs and ledger."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from celery import Celery
from PIL import Image

from dropq.ledger import Ledger, ledger_for
from dropq.topology import TOPOLOGY
from infra.local.cloud import LocalCloud
from infra.local.server import recorded_actions
from tasks.config import celery_config
from tests.conftest import wait_for_outcome

pytestmark = pytest.mark.e2e


def cloud_ledger_of(cloud: LocalCloud) -> Ledger:
    return ledger_for(cloud.settings)


def photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1024, 768), (200, 40, 40)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


CSV = b"sku,qty,price\nA-1,3,9.99\nB-2,,4.50\nC-3,7,\nD-4,1,120\n"
UNKNOWN = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + os.urandom(2048)


def run_cli(cloud: LocalCloud, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command with the environment `dropq up` tells users to export."""
    env = {**os.environ, **cloud.exports()}
    return subprocess.run(list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=True)


def upload(cloud: LocalCloud, how: str, key: str, data: bytes, tmp_path: Path) -> None:
    bucket = cloud.settings.bucket
    if how == "boto3":
        cloud.settings.client("s3").put_object(Bucket=bucket, Key=key, Body=data)
    else:
        local = tmp_path / uuid.uuid4().hex
        local.write_bytes(data)
        aws = str(Path(sys.executable).with_name("aws"))
        run_cli(cloud, aws, "--endpoint-url", cloud.settings.endpoint_url or "", "s3", "cp", str(local), f"s3://{bucket}/{key}")


def read(cloud: LocalCloud, key: str) -> bytes:
    return cloud.settings.client("s3").get_object(Bucket=cloud.settings.bucket, Key=key)["Body"].read()


def listed(cloud: LocalCloud, prefix: str) -> list[str]:
    response = cloud.settings.client("s3").list_objects_v2(Bucket=cloud.settings.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in response.get("Contents", []))


@pytest.mark.parametrize("how", ["boto3", "aws-cli"])
def test_a_jpeg_a_csv_and_an_unknown_file_are_processed(cloud: LocalCloud, cloud_ledger: Ledger, how: str, tmp_path: Path) -> None:
    inbox = f"incoming/{how}-{uuid.uuid4().hex[:8]}/"
    files = {f"{inbox}photo.jpg": photo(), f"{inbox}stock.csv": CSV, f"{inbox}report.pdf.bin": UNKNOWN}
    for key, data in files.items():
        upload(cloud, how, key, data, tmp_path)
    bucket = cloud.settings.bucket
    entries = {key: wait_for_outcome(cloud_ledger, bucket, key) for key in files}
    assert {key: entry["state"] for key, entry in entries.items()} == dict.fromkeys(files, "succeeded")
    for key, data in files.items():
        assert entries[key]["sha256"] == hashlib.sha256(data).hexdigest()

    # The image: two thumbnails of the right size and a manifest that names them
    image_key = f"{inbox}photo.jpg"
    folder = f"processed/images/{image_key}/"
    assert (
        entries[image_key]["outputs"]
        == listed(cloud, folder)
        == [f"{folder}manifest.json", f"{folder}thumb-128.jpg", f"{folder}thumb-512.jpg"]
    )
    assert Image.open(io.BytesIO(read(cloud, f"{folder}thumb-128.jpg"))).size == (128, 96)
    assert Image.open(io.BytesIO(read(cloud, f"{folder}thumb-512.jpg"))).size == (512, 384)
    manifest = json.loads(read(cloud, f"{folder}manifest.json"))
    assert (manifest["width"], manifest["height"], manifest["format"]) == (1024, 768, "JPEG")
    assert manifest["source"]["sha256"] == hashlib.sha256(files[image_key]).hexdigest()

    # The table: Parquet rows and a profile
    table_key = f"{inbox}stock.csv"
    folder = f"processed/tables/{table_key}/"
    table = pq.read_table(io.BytesIO(read(cloud, f"{folder}data/part-000000000000.parquet")))
    assert table.to_pylist()[1] == {"sku": "B-2", "qty": None, "price": 4.5}
    assert table.num_rows == 4
    profile = json.loads(read(cloud, f"{folder}profile.json"))
    assert profile["row_count"] == 4
    assert {c["name"]: c["null_count"] for c in profile["columns"]} == {"sku": 0, "qty": 1, "price": 1}

    # Anything else: a metadata record
    other_key = f"{inbox}report.pdf.bin"
    record = json.loads(read(cloud, f"processed/metadata/{other_key}/metadata.json"))
    assert record["content_type"] == "application/pdf"
    assert record["source"]["sha256"] == hashlib.sha256(UNKNOWN).hexdigest()
    assert record["source"]["bytes"] == len(UNKNOWN)


def test_bad_input_fails_with_a_reason_and_the_worker_goes_on(cloud: LocalCloud, cloud_ledger: Ledger, tmp_path: Path) -> None:
    inbox = f"incoming/bad-{uuid.uuid4().hex[:8]}/"
    bad = {
        f"{inbox}truncated.jpg": (photo()[:1500], "corrupt or truncated image"),
        f"{inbox}not-a.csv": (b"a,b,c\n1,2\n3,4,5,6\n", "not a valid CSV file: CSV parse error: Expected 3 columns, got 2"),
        f"{inbox}empty.txt": (b"", "the file is empty (0 bytes)"),
        f"{inbox}holiday snaps/ünïcødé + spaces.jpg": (b"\xff\xd8\xff\xe0 not really a jpeg", "corrupt or truncated image"),
    }
    for key, (data, _) in bad.items():
        upload(cloud, "boto3", key, data, tmp_path)
    good = f"{inbox}after the bad ones/naïve café.jpg"
    upload(cloud, "boto3", good, photo(), tmp_path)

    bucket = cloud.settings.bucket
    for key, (_, reason) in bad.items():
        entry = wait_for_outcome(cloud_ledger, bucket, key)
        assert entry["state"] == "failed", key
        assert reason in entry["reason"], entry["reason"]
        assert entry.get("attempts") == 1, "a permanent failure is not retried"
    assert wait_for_outcome(cloud_ledger, bucket, good)["state"] == "succeeded"
    assert listed(cloud, f"processed/images/{inbox}") == [
        f"processed/images/{good}/manifest.json",
        f"processed/images/{good}/thumb-128.jpg",
        f"processed/images/{good}/thumb-512.jpg",
    ]
    assert listed(cloud, f"processed/tables/{inbox}") == listed(cloud, f"processed/metadata/{inbox}") == []
    sqs = cloud.settings.client("sqs")
    dlq = sqs.get_queue_attributes(QueueUrl=cloud.settings.queue_url("default-dlq"), AttributeNames=["ApproximateNumberOfMessages"])
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_outputs_never_trigger_the_producer(cloud: LocalCloud, cloud_ledger: Ledger, tmp_path: Path) -> None:
    key = f"incoming/loop-{uuid.uuid4().hex[:8]}.jpg"
    upload(cloud, "boto3", key, photo(), tmp_path)
    assert wait_for_outcome(cloud_ledger, cloud.settings.bucket, key)["state"] == "succeeded"
    # Given outputs were written, nothing in the ledger is an output, and no work is left queued
    assert all(not entry["key"].startswith("processed/") for entry in cloud_ledger.recent(limit=500))
    sqs = cloud.settings.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=cloud.settings.queue_url("default"), AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"


def test_put_and_status_from_the_cli(cloud: LocalCloud, cloud_ledger: Ledger, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}.csv"
    (tmp_path / name).write_bytes(CSV)
    dropq = str(Path(sys.executable).with_name("dropq"))

    put = run_cli(cloud, dropq, "put", str(tmp_path / name))
    key = f"incoming/{name}"
    assert put.stdout.strip() == f"s3://{cloud.settings.bucket}/{key}"
    assert wait_for_outcome(cloud_ledger, cloud.settings.bucket, key)["state"] == "succeeded"

    status: dict[str, Any] = json.loads(run_cli(cloud, dropq, "status", "--json").stdout)
    assert (status["bucket"], status["inbox_prefix"], status["output_prefix"]) == ("dropq-local", "incoming/", "processed/")
    assert [q["physical_name"] for q in status["queues"]] == [f"dropq-{q.name}" for q in TOPOLOGY.queues]
    assert all({"visible", "in_flight", "dead_lettered"} <= queue.keys() for queue in status["queues"])
    assert [(w["hostname"].split("@")[0], w["pool"]) for w in status["workers"]] == [("default-1", "default")]
    assert {p["name"]: (p["workers"], p["desired"]) for p in status["pools"]} == {"default": (1, 1), "heavy": (0, 0), "urgent": (0, 0)}
    mine = [f for f in status["files"] if f["key"] == key]
    assert mine and mine[0]["state"] == "succeeded" and mine[0]["pipeline"] == "tables"

    text = run_cli(cloud, dropq, "status").stdout
    assert "dropq-default" in text and key in text
    assert ["default", "1", "1", "0..4"] in [line.split()[:4] for line in text.splitlines()]


def test_at_run_time_queues_are_predefined_never_listed_or_created(cloud: LocalCloud, cloud_ledger: Ledger, tmp_path: Path) -> None:
    key = f"incoming/requests-{uuid.uuid4().hex[:8]}.csv"
    upload(cloud, "boto3", key, CSV, tmp_path)
    assert wait_for_outcome(cloud_ledger, cloud.settings.bucket, key)["state"] == "succeeded"
    assert cloud.recording is not None
    actions = recorded_actions(cloud.recording)
    # Given the flow ran (messages were sent, received and deleted), nobody looked queues up or made them
    assert actions[("sqs", "SendMessageBatch")] >= 1
    assert actions[("sqs", "ReceiveMessage")] >= 1
    assert actions[("sqs", "DeleteMessage")] + actions[("sqs", "DeleteMessageBatch")] >= 1
    assert {a for (service, a) in actions if service == "sqs"} & {"CreateQueue", "ListQueues", "GetQueueUrl"} == set()


def test_only_a_chords_parts_store_results_in_dynamodb_each_with_a_ttl(
    cloud: LocalCloud, workloads_cloud: LocalCloud, tmp_path: Path
) -> None:
    # Given a plain file processed in one task, and an image split into parts (the workloads cloud splits every image)
    key = f"incoming/result-{uuid.uuid4().hex[:8]}.txt"
    upload(cloud, "boto3", key, b"result backend check\n", tmp_path)
    plain = wait_for_outcome(cloud_ledger_of(cloud), cloud.settings.bucket, key)
    image = f"incoming/parts/result-{uuid.uuid4().hex[:8]}.jpg"
    workloads_cloud.settings.client("s3").put_object(Bucket=workloads_cloud.settings.bucket, Key=image, Body=photo())
    split = wait_for_outcome(cloud_ledger_of(workloads_cloud), workloads_cloud.settings.bucket, image)
    assert split["state"] == "succeeded" and split["parts"] == 2

    def results(of: LocalCloud) -> list[dict[str, Any]]:
        table = of.settings.physical_name(of.settings.topology.results_table.name)
        return of.settings.client("dynamodb").scan(TableName=table)["Items"]

    # Then the plain file's task wrote no result (the ledger has its outcome): nothing reads it
    assert not [i for i in results(cloud) if plain["task_id"] in i["id"]["S"]]
    # and the parts' results, which the chord's callback reads, are stored until the topology's result TTL
    parts = [i for i in results(workloads_cloud) if '"index"' in i.get("result", {}).get("B", b"").decode("utf-8", "replace")]
    assert parts, "the chord's parts store their results"
    for item in parts:
        assert int(item["ttl"]["N"]) - int(float(item["timestamp"]["N"])) == workloads_cloud.settings.topology.result_ttl_seconds
    client = Celery("client")
    client.config_from_object(celery_config(workloads_cloud.settings))
    assert client.AsyncResult(split["task_id"]).status == "PENDING", "the splitting task itself stores nothing"

"""Canvas in the pipelines: thumbnails as a group, large tables in chunks, each with a chord callback, on SQS."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from PIL import Image

from dropq.ledger import ledger_for
from infra.local.cloud import LocalCloud
from tests.conftest import TEST_CHUNK_BYTES, sent_tasks, wait_for_outcome
from tests.faults.inject import drop

pytestmark = pytest.mark.e2e


def csv_rows(count: int, start: int = 0) -> bytes:
    return "".join(f"{i},city-{i % 97},{i * 0.5}\n" for i in range(start, start + count)).encode()


def outputs_below(cloud: LocalCloud, folder: str) -> list[str]:
    s3 = cloud.settings.client("s3")
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=cloud.settings.bucket, Prefix=folder).get("Contents", []))


def read(cloud: LocalCloud, key: str) -> bytes:
    return cloud.settings.client("s3").get_object(Bucket=cloud.settings.bucket, Key=key)["Body"].read()


def test_thumbnail_sizes_render_as_parallel_parts_and_the_manifest_is_the_chords_callback(workloads_cloud: LocalCloud) -> None:
    settings = workloads_cloud.settings
    assert workloads_cloud.recording is not None
    before = sent_tasks(workloads_cloud.recording)
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 900), (200, 30, 30)).save(buffer, "JPEG")
    drop(settings, {"incoming/parts/red.jpg": buffer.getvalue()})

    entry = wait_for_outcome(ledger_for(settings), settings.bucket, "incoming/parts/red.jpg")
    sent = sent_tasks(workloads_cloud.recording) - before

    folder = "processed/images/incoming/parts/red.jpg/"
    assert entry["state"] == "succeeded" and entry["parts"] == 2
    names = ("manifest.json", "thumb-128.jpg", "thumb-512.jpg")
    assert entry["outputs"] == outputs_below(workloads_cloud, folder) == [f"{folder}{name}" for name in names]
    manifest = json.loads(read(workloads_cloud, f"{folder}manifest.json"))
    assert [(t["width"], t["height"]) for t in manifest["thumbnails"]] == [(128, 96), (512, 384)]
    assert (manifest["width"], manifest["height"]) == (1200, 900) and len(manifest["source"]["sha256"]) == 64
    # The producer's task, one part per size, one callback; the DynamoDB backend's counter completes the chord.
    assert sent == {"dropq.process": 1, "dropq.part": 2, "dropq.combine": 1}, "no celery.chord_unlock polling"


def test_a_large_table_is_converted_in_chunks_side_by_side_into_one_dataset_and_one_profile(workloads_cloud: LocalCloud) -> None:
    settings = workloads_cloud.settings
    data = b"id,city,amount\n" + csv_rows(12_000)
    assert len(data) > 3 * TEST_CHUNK_BYTES
    drop(settings, {"incoming/parts/big.csv": data})

    entry = wait_for_outcome(ledger_for(settings), settings.bucket, "incoming/parts/big.csv", timeout=90)

    folder = "processed/tables/incoming/parts/big.csv/"
    assert entry["state"] == "succeeded", entry.get("reason")
    chunks = [key for key in entry["outputs"] if key.startswith(f"{folder}data/part-")]
    assert len(chunks) == entry["parts"] >= 3
    assert entry["outputs"] == outputs_below(workloads_cloud, folder) == sorted([*chunks, f"{folder}profile.json"])
    merged = pa.concat_tables([pq.read_table(io.BytesIO(read(workloads_cloud, key))) for key in chunks])
    whole = pacsv.read_csv(io.BytesIO(data))
    assert merged.equals(whole), "the chunks hold every row, in order, with the types of the whole file"
    profile = json.loads(read(workloads_cloud, f"{folder}profile.json"))
    assert profile["row_count"] == 12_000 and profile["outputs"] == chunks
    columns = {c["name"]: c for c in profile["columns"]}
    assert columns["id"] == {"name": "id", "type": "int64", "null_count": 0, "min": 0, "max": 11_999}
    assert (columns["amount"]["min"], columns["amount"]["max"]) == (0.0, 5999.5)
    assert (columns["city"]["min"], columns["city"]["max"]) == ("city-0", "city-96")


def test_a_chunk_that_fails_fails_the_file_with_its_reason_and_leaves_no_output(workloads_cloud: LocalCloud) -> None:
    settings = workloads_cloud.settings
    # Past the first MiB, where the column types were inferred, one amount is not a number.
    data = b"id,city,amount\n" + csv_rows(60_000) + b"60000,Oslo,lots\n" + csv_rows(500, start=60_001)
    assert len(data) > 1024 * 1024 + TEST_CHUNK_BYTES
    drop(settings, {"incoming/parts/broken.csv": data})

    entry = wait_for_outcome(ledger_for(settings), settings.bucket, "incoming/parts/broken.csv", timeout=120)

    assert entry["state"] == "failed"
    assert re.match(rf"part \d+ of {entry['parts']} failed: not a valid CSV file \(in bytes \d+\.\.\d+\): ", entry["reason"])
    assert "invalid value 'lots'" in entry["reason"]
    assert outputs_below(workloads_cloud, "processed/tables/incoming/parts/broken.csv/") == [], "no chunk of it is left behind"
    assert Path(workloads_cloud.state_dir).joinpath("worker-default-1.log").read_text().count("celery.chord_unlock") == 0

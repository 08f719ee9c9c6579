"""A backfill's parts that need no AWS: its pace, its checkpoint, and the S3 Inventory manifests it reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dropq.backfill import Checkpoint, Inventory, Pacer, Progress
from dropq.errors import ActionError

MANIFEST = {
    "sourceBucket": "dropq-local",
    "destinationBucket": "arn:aws:s3:::inventories",
    "version": "2016-11-30",
    "fileFormat": "CSV",
    "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
    "files": [{"key": "dropq-local/all/data/one.csv.gz", "size": 10, "MD5checksum": "x"}],
}


PARQUET_SCHEMA = (
    "message s3.inventory { required binary bucket (STRING); required binary key (STRING); optional int64 size; "
    "optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); optional binary e_tag (STRING); }"
)


def test_a_parquet_or_orc_inventorys_rows_are_read_by_their_column_names() -> None:
    import pyarrow as pa
    import pyarrow.orc
    import pyarrow.parquet

    table = pa.table({"bucket": ["b", "b"], "key": ["incoming/a b.txt", "incoming/c.txt"], "size": [3, None], "e_tag": ["e1", "e2"]})
    for file_format, write in (("Parquet", pyarrow.parquet.write_table), ("ORC", pyarrow.orc.write_table)):
        sink = pa.BufferOutputStream()
        write(table, sink)
        manifest = {**MANIFEST, "fileFormat": file_format, "fileSchema": PARQUET_SCHEMA}
        inventory = Inventory.parse("m.json", json.dumps(manifest).encode())
        assert inventory.rows("data/1", sink.getvalue().to_pybytes()) == [
            ("b", "incoming/a b.txt", "e1", 3),
            ("b", "incoming/c.txt", "e2", 0),
        ]
        with pytest.raises(ActionError, match=f"the inventory file s3://inventories/data/2 does not parse as {file_format}"):
            inventory.rows("data/2", b"not columnar")


def test_the_pacer_keeps_to_its_rate_over_the_whole_walk() -> None:
    now, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.take(10)
    # 50 objects at 10/s: the first ten at once, then a second before each next ten.
    assert slept == [1.0, 1.0, 1.0, 1.0] and now[0] == 4.0


def test_without_a_rate_the_pacer_never_waits() -> None:
    pacer = Pacer(None, clock=lambda: 0.0, sleep=lambda s: pytest.fail("slept"))
    pacer.take(1_000_000)


def test_a_checkpoint_carries_on_where_it_stopped_and_starts_over_once_done(tmp_path: Path) -> None:
    first = Checkpoint.open(tmp_path, "backfill s3://b/incoming/")
    assert not first.resumed
    first.position, first.progress = "incoming/k-0500", Progress(listed=500)
    first.progress.enqueued["metadata on default"] = 480
    first.save()

    again = Checkpoint.open(tmp_path, "backfill s3://b/incoming/")
    assert again.resumed and again.position == "incoming/k-0500" and again.progress.enqueued_total == 480
    assert not Checkpoint.open(tmp_path, "backfill s3://b/other/").resumed, "a checkpoint per job"
    assert not Checkpoint.open(tmp_path, "backfill s3://b/incoming/", restart=True).resumed

    again.done = True
    again.save()
    assert not Checkpoint.open(tmp_path, "backfill s3://b/incoming/").resumed, "a finished walk starts from the top"


def test_a_checkpoint_that_does_not_parse_names_its_file(tmp_path: Path) -> None:
    checkpoint = Checkpoint.open(tmp_path, "job")
    checkpoint.save()
    checkpoint.path.write_text("{not json")
    with pytest.raises(ActionError, match=f"the checkpoint {checkpoint.path} does not parse"):
        Checkpoint.open(tmp_path, "job")


def test_an_inventory_manifest_names_its_data_files_and_fields() -> None:
    inventory = Inventory.parse("s3://inventories/m.json", json.dumps(MANIFEST).encode())
    assert inventory.destination == "inventories" and inventory.files == ("dropq-local/all/data/one.csv.gz",)
    assert inventory.fields == ("Bucket", "Key", "Size", "LastModifiedDate", "ETag")


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"<html>", "the inventory manifest s3://i/m.json does not parse"),
        (json.dumps({**MANIFEST, "files": None}).encode(), "does not parse"),
        (json.dumps({**MANIFEST, "fileFormat": "JSON"}).encode(), "is JSON; a backfill reads CSV, Parquet, ORC inventories"),
        (json.dumps({**MANIFEST, "fileSchema": "Bucket, Key, Size"}).encode(), "has no ETag field: add it"),
        (json.dumps({**MANIFEST, "fileFormat": "Parquet", "fileSchema": PARQUET_SCHEMA.replace("e_tag", "tag")}).encode(), "no ETag"),
    ],
)
def test_an_inventory_that_cannot_be_read_is_a_one_line_error(manifest: bytes, message: str) -> None:
    with pytest.raises(ActionError, match=message):
        Inventory.parse("s3://i/m.json", manifest)


def test_an_inventory_of_every_version_yields_only_the_current_objects() -> None:
    import gzip

    manifest = {**MANIFEST, "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, ETag"}
    inventory = Inventory.parse("m.json", json.dumps(manifest).encode())
    rows = (
        '"b","incoming/a.txt","v2","true","false","3","e2"\n'
        '"b","incoming/a.txt","v1","false","false","3","e1"\n'
        '"b","incoming/gone.txt","v9","true","true","",""\n'
    )
    assert inventory.rows("data/1", gzip.compress(rows.encode())) == [("b", "incoming/a.txt", "e2", 3)]


def test_an_inventory_of_another_bucket_is_refused_naming_it(tmp_path: Path) -> None:
    from dropq.backfill import inventoried

    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(MANIFEST))
    with pytest.raises(ActionError, match="lists bucket 'dropq-local', not this deployment's \\(my-data\\)"):
        list(inventoried(None, str(manifest), "incoming/", bucket="my-data"))


def test_a_walk_cut_short_is_known_as_such_even_when_started_over(tmp_path: Path) -> None:
    # Its queued files without a message (a reprocessing killed between a write and its send) are sent again
    cut = Checkpoint.open(tmp_path, "reprocess metadata")
    cut.save()
    assert Checkpoint.open(tmp_path, "reprocess metadata").cut_short
    assert Checkpoint.open(tmp_path, "reprocess metadata", restart=True).cut_short
    cut.done = True
    cut.save()
    assert not Checkpoint.open(tmp_path, "reprocess metadata").cut_short, "one that finished starts over, not cut short"
    assert not Checkpoint.open(tmp_path, "reprocess metadata", restart=True).cut_short
    assert not Checkpoint.open(tmp_path, "another job").cut_short

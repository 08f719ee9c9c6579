"""Backfill and reprocess against a moto server: listings and inventories walked page by page, the ledger consulted,
the producer's path taken, checkpoints carried on from, and nothing enqueued twice."""

from __future__ import annotations

import gzip
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dropq import backfill
from dropq.backfill import Checkpoint, Page, Reprocess, inventoried, listed, walk
from dropq.errors import ActionError
from dropq.ledger import QUEUED, SUCCEEDED, Ledger, ledger_for
from dropq.objects import ObjectRef
from dropq.protocol import decode_task_message
from dropq.settings import Settings
from ops.cli import main
from tests.conftest import drain, purge_queues


@pytest.fixture
def folder(moto_settings: Settings) -> str:
    return f"{moto_settings.topology.inbox_prefix}backfill-{uuid.uuid4().hex[:8]}/"


def put(settings: Settings, keys: list[str]) -> list[ObjectRef]:
    s3 = settings.client("s3")
    refs = []
    for key in keys:
        body = b"" if key.endswith("/") else key.encode()  # a folder marker is empty, as S3's console makes it
        etag = s3.put_object(Bucket=settings.bucket, Key=key, Body=body)["ETag"].strip('"')
        refs.append(ObjectRef(settings.bucket, key, etag, len(body)))
    return refs


def sent_keys(settings: Settings) -> list[str]:
    messages = [decode_task_message(m["Body"]) for queue in ("default", "heavy", "urgent") for m in drain(settings, queue)]
    return sorted(m["body"]["kwargs"]["key"] for m in messages)


def run(settings: Settings, pages: Iterator[Page], job: str, **options: Any) -> backfill.Progress:
    checkpoint = Checkpoint.open(settings.state_dir, job)
    return walk(pages, settings, ledger_for(settings), settings.client("sqs"), checkpoint, **options)


def test_a_backfill_enqueues_each_new_version_once_and_a_second_run_nothing(
    moto_settings: Settings, folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill, "PAGE_SIZE", 40)
    purge_queues(moto_settings)
    keys = [f"{folder}notes-{i:03d}.txt" for i in range(120)] + [f"{folder}table-{i}.csv" for i in range(5)]
    put(moto_settings, [*keys, f"{folder}sub/"])  # a folder marker is not a file
    s3 = moto_settings.client("s3")

    progress = run(moto_settings, listed(s3, moto_settings.bucket, folder), f"t {folder}")

    assert sent_keys(moto_settings) == sorted(keys)
    assert dict(progress.enqueued) == {"metadata on default": 120, "tables on default": 5} and progress.ignored == 1
    ledger = ledger_for(moto_settings)
    assert {ledger.get(moto_settings.bucket, key)["state"] for key in keys} == {QUEUED}

    again = run(moto_settings, listed(s3, moto_settings.bucket, folder), f"t {folder}")
    assert again.enqueued_total == 0 and dict(again.skipped) == {QUEUED: 125} and sent_keys(moto_settings) == []


def test_a_walk_stopped_halfway_carries_on_from_its_checkpoint_and_enqueues_each_object_once(
    moto_settings: Settings, folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill, "PAGE_SIZE", 25)
    purge_queues(moto_settings)
    keys = [f"{folder}f-{i:03d}.txt" for i in range(100)]
    put(moto_settings, keys)
    s3, job = moto_settings.client("s3"), f"t {folder}"

    def stopped_after(pages: Iterator[Page], count: int) -> Iterator[Page]:
        for number, page in enumerate(pages):
            if number == count:
                raise KeyboardInterrupt
            yield page

    with pytest.raises(KeyboardInterrupt):
        run(moto_settings, stopped_after(listed(s3, moto_settings.bucket, folder), 2), job)
    checkpoint = Checkpoint.open(moto_settings.state_dir, job)
    assert checkpoint.resumed and checkpoint.position == keys[49] and checkpoint.progress.enqueued_total == 50

    finished = run(moto_settings, listed(s3, moto_settings.bucket, folder, after=checkpoint.position), job)
    assert finished.enqueued_total == 100 and finished.listed == 100, "counted over both runs"
    assert sent_keys(moto_settings) == keys, "each object once"


class Refusing:
    """SQS that refuses the first entry of every SendMessageBatch, as SQS reports it (a `Failed` entry, HTTP 200)."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        response = self.sqs.send_message_batch(QueueUrl=QueueUrl, Entries=Entries[1:]) if Entries[1:] else {}
        failed = {"Id": Entries[0]["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
        return {"Successful": response.get("Successful", []), "Failed": [failed]}


def test_an_object_sqs_refused_is_not_recorded_so_that_the_next_run_enqueues_it(moto_settings: Settings, folder: str) -> None:
    purge_queues(moto_settings)
    keys = [f"{folder}f-{i}.txt" for i in range(5)]
    put(moto_settings, keys)
    s3, job, ledger = moto_settings.client("s3"), f"t {folder}", ledger_for(moto_settings)
    checkpoint = Checkpoint.open(moto_settings.state_dir, job)

    with pytest.raises(ActionError, match=r"objects not enqueued: 1 \(.*InternalError try again\); run again to carry on"):
        walk(listed(s3, moto_settings.bucket, folder), moto_settings, ledger, Refusing(moto_settings.client("sqs")), checkpoint)
    first = sent_keys(moto_settings)
    (refused,) = set(keys) - set(first)
    assert ledger.get(moto_settings.bucket, refused) is None, "only what was sent is recorded queued"
    assert not Checkpoint.open(moto_settings.state_dir, job).resumed, "the page is not checkpointed"

    again = run(moto_settings, listed(s3, moto_settings.bucket, folder), job)
    assert sent_keys(moto_settings) == [refused] and again.enqueued_total == 1


def test_an_s3_inventory_is_walked_like_a_listing_with_its_keys_decoded(moto_settings: Settings, folder: str) -> None:
    purge_queues(moto_settings)
    keys = [f"{folder}a file {i}.txt" for i in range(3)]
    refs = put(moto_settings, keys)
    s3, inventories = moto_settings.client("s3"), f"inventories-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=inventories)
    rows = "".join(f'"{r.bucket}","{r.key.replace(" ", "%20")}","{r.size}","2026-12-01T00:00:00.000Z","{r.etag}"\n' for r in refs)
    rows += f'"{moto_settings.bucket}","elsewhere/x.txt","1","2026-12-01T00:00:00.000Z","e"\n'
    s3.put_object(Bucket=inventories, Key="inv/data/1.csv.gz", Body=gzip.compress(rows.encode()))
    manifest = {
        "sourceBucket": moto_settings.bucket,
        "destinationBucket": f"arn:aws:s3:::{inventories}",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
        "files": [{"key": "inv/data/1.csv.gz", "size": 1, "MD5checksum": "-"}],
    }
    s3.put_object(Bucket=inventories, Key="inv/manifest.json", Body=json.dumps(manifest).encode())

    progress = run(moto_settings, inventoried(s3, f"s3://{inventories}/inv/manifest.json", folder), f"inv {folder}")

    assert progress.enqueued_total == 3 and sent_keys(moto_settings) == sorted(keys)
    assert {ledger_for(moto_settings).get(moto_settings.bucket, k)["sk"] for k in keys} == {r.etag for r in refs}


def test_a_bucket_that_does_not_exist_or_an_inventory_that_does_not_parse_is_named(moto_settings: Settings, tmp_path: Path) -> None:
    s3 = moto_settings.client("s3")
    with pytest.raises(ActionError, match="bucket 'no-such-bucket-here' does not exist"):
        list(listed(s3, "no-such-bucket-here", "incoming/"))
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    with pytest.raises(ActionError, match=re.escape(f"the inventory manifest {manifest} does not parse")):
        list(inventoried(s3, str(manifest), "incoming/"))
    with pytest.raises(ActionError, match=r"s3://no-such-bucket-here/m\.json does not exist"):
        list(inventoried(s3, "s3://no-such-bucket-here/m.json", "incoming/"))


def succeed(ledger: Ledger, ref: ObjectRef, pipeline: str, version: int) -> None:
    claim = ledger.claim(ref, pipeline, f"task-{uuid.uuid4().hex[:6]}", "w", 60)
    assert claim.owner and ledger.mark_succeeded(ref, claim.owner, [f"processed/{pipeline}/{ref.key}/out"], 5, "0" * 64, version=version)


def test_reprocessing_enqueues_exactly_the_files_an_older_version_made(moto_settings: Settings, folder: str) -> None:
    purge_queues(moto_settings)
    ledger = ledger_for(moto_settings)
    old = put(moto_settings, [f"{folder}old-{i}.txt" for i in range(4)])
    new = put(moto_settings, [f"{folder}new-{i}.txt" for i in range(3)])
    tables = put(moto_settings, [f"{folder}t-{i}.csv" for i in range(2)])
    failed = put(moto_settings, [f"{folder}failed.txt"])
    for ref in old:
        succeed(ledger, ref, "metadata", 1)
    for ref in new:
        succeed(ledger, ref, "metadata", 2)
    for ref in tables:
        succeed(ledger, ref, "tables", 1)
    claim = ledger.claim(failed[0], "metadata", "t", "w", 60)
    assert claim.owner and ledger.mark_failed(failed[0], claim.owner, "bad")
    s3 = moto_settings.client("s3")

    progress = run(moto_settings, listed(s3, moto_settings.bucket, folder), f"re {folder}", reprocess=Reprocess("metadata", 2))

    assert sent_keys(moto_settings) == sorted(r.key for r in old)
    assert progress.enqueued_total == 4 and progress.skipped["made by version 2 or later"] == 3 and progress.skipped["failed"] == 1
    assert {ledger.get(moto_settings.bucket, r.key)["state"] for r in old} == {QUEUED}
    assert {ledger.get(moto_settings.bucket, r.key)["state"] for r in (*new, *tables)} == {SUCCEEDED}

    again = run(moto_settings, listed(s3, moto_settings.bucket, folder), f"re {folder}", reprocess=Reprocess("metadata", 2))
    assert again.enqueued_total == 0 and sent_keys(moto_settings) == [], "queued already: a second run sends none"

    # Once they are done, version 3's run is killed between a file's write and its message: that file is left
    # queued without one. The next run carries on from its page and sends it too, with the rest.
    for ref in old:
        succeed(ledger, ref, "metadata", 2)
    Checkpoint.open(moto_settings.state_dir, f"re {folder} v3").save()
    assert ledger.reprocess(old[0], "never-sent", "default", "metadata", 3)
    carried = run(moto_settings, listed(s3, moto_settings.bucket, folder), f"re {folder} v3", reprocess=Reprocess("metadata", 3))
    assert sent_keys(moto_settings) == sorted(r.key for r in (*old, *new))
    assert carried.enqueued_total == 7


def cli(settings: Settings, tmp_path: Path, *args: str) -> Any:
    env = {**settings.environment(), "DROPQ_STATE_DIR": str(tmp_path)}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_a_dry_run_counts_per_pipeline_and_queue_and_enqueues_nothing(moto_settings: Settings, folder: str, tmp_path: Path) -> None:
    purge_queues(moto_settings)
    put(moto_settings, [f"{folder}a.txt", f"{folder}b.txt", f"{folder}c.csv", f"{folder}urgent.jpg"])

    result = cli(moto_settings, tmp_path, "backfill", f"s3://{moto_settings.bucket}/{folder}", "--dry-run")

    assert result.exit_code == 0, result.output
    assert f"backfill s3://{moto_settings.bucket}/{folder}: listed 4, would enqueue 4, skipped none" in result.output
    assert "  2 metadata on default\n" in result.output and "  1 images on default\n" in result.output
    assert sent_keys(moto_settings) == [] and ledger_for(moto_settings).get(moto_settings.bucket, f"{folder}a.txt") is None


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("photos/", "prefix 'photos/' is outside the inbox 'incoming/': only files below it are processed"),
        ("s3://someone-elses/incoming/", "bucket 'someone-elses' is not this deployment's"),
    ],
)
def test_a_backfill_of_what_dropq_does_not_process_is_refused_naming_it(
    moto_settings: Settings, tmp_path: Path, where: str, message: str
) -> None:
    result = CliRunner().invoke(main, ["backfill", where], env={**moto_settings.environment(), "DROPQ_STATE_DIR": str(tmp_path)})
    assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_a_prefix_that_matches_nothing_says_so(moto_settings: Settings, folder: str, tmp_path: Path) -> None:
    result = cli(moto_settings, tmp_path, "backfill", f"{folder}nothing-here/")
    assert result.exit_code == 0 and "listed 0, enqueued 0" in result.output and "nothing matched" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pipeline", "metadata", "--before", "7"], "--before 7: metadata has no version 7 (its current version is 1)"),
        (["--pipeline", "metadata"], "metadata is at version 1: no version below 1 made anything"),
        (["--pipeline", "thumbnails"], "--pipeline 'thumbnails' is no pipeline of this deployment's routes"),
    ],
)
def test_reprocessing_a_version_no_pipeline_has_is_refused_naming_it(
    moto_settings: Settings, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["reprocess", *args], env={**moto_settings.environment(), "DROPQ_STATE_DIR": str(tmp_path)})
    assert result.exit_code == 1 and message in result.output, result.output


def _age(settings: Settings, ledger: Ledger, ref: ObjectRef, updated_at: str) -> None:
    """Make an entry look last written at `updated_at` (moto stamps writes now)."""
    key = {"pk": {"S": f"file#s3://{ref.bucket}/{ref.key}"}, "sk": {"S": ref.etag}}
    ledger.client.update_item(
        TableName=ledger.table_name, Key=key, UpdateExpression="SET updated_at = :t", ExpressionAttributeValues={":t": {"S": updated_at}}
    )


def test_a_backfill_sends_again_the_files_queued_or_dead_longer_than_their_queue_keeps_a_message(
    moto_settings: Settings, folder: str
) -> None:
    purge_queues(moto_settings)
    ledger, s3 = ledger_for(moto_settings), moto_settings.client("s3")
    stale_queued, fresh_queued, stale_dead, live = put(moto_settings, [f"{folder}{name}.txt" for name in ("sq", "fq", "sd", "live")])
    for ref in (stale_queued, fresh_queued):
        assert ledger.mark_queued(ref, "metadata", "default", "t0")
    assert ledger.claim(stale_dead, "metadata", "t0", worker="gone", lease_seconds=0).acquired
    assert ledger.claim(live, "metadata", "t0", worker="busy", lease_seconds=600).acquired
    # Queued (or running, its worker gone) for longer than the default queue keeps a message (4 days): theirs is gone
    for ref in (stale_queued, stale_dead, live):
        _age(moto_settings, ledger, ref, "2020-01-01T00:00:00.000Z")

    progress = run(moto_settings, listed(s3, moto_settings.bucket, folder), f"stale {folder}")

    assert sent_keys(moto_settings) == sorted([stale_queued.key, stale_dead.key]), "not one that may still wait, nor one that runs"
    assert progress.enqueued_total == 2 and progress.skipped == {"queued": 1, "running": 1}

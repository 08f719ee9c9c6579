"""`dropq put` against a moto server: directories uploaded with their paths, two files for one key refused, and a
file already processed with the same content not uploaded again; `dropq retry --force` of a succeeded file."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dropq.ledger import QUEUED, ledger_for
from dropq.objects import ObjectRef
from dropq.protocol import decode_task_message
from dropq.settings import Settings
from ops.cli import _s3_etag, main
from tests.conftest import drain, purge_queues


def cli(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env=settings.environment())


def listed(settings: Settings, prefix: str) -> list[str]:
    contents = settings.client("s3").list_objects_v2(Bucket=settings.bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in contents)


@pytest.fixture
def run() -> str:
    return f"put-{uuid.uuid4().hex[:8]}/"


def test_a_directory_is_uploaded_with_its_relative_paths(moto_settings: Settings, tmp_path: Path, run: str) -> None:
    tree = tmp_path / "batch"
    for relative in ("d1/same.csv", "d2/same.csv", "top.txt", "d1/deep/x.jpg"):
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        (tree / relative).write_text(relative)

    result = cli(moto_settings, "put", str(tree), "--prefix", run)

    assert result.exit_code == 0, result.output
    inbox = f"{moto_settings.topology.inbox_prefix}{run}"
    assert listed(moto_settings, inbox) == [f"{inbox}batch/{r}" for r in ("d1/deep/x.jpg", "d1/same.csv", "d2/same.csv", "top.txt")]
    assert "4 files uploaded" in result.output


def test_two_files_for_one_key_are_refused_and_nothing_is_uploaded(moto_settings: Settings, tmp_path: Path, run: str) -> None:
    for folder in ("d1", "d2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.csv").write_text(folder)

    result = cli(moto_settings, "put", str(tmp_path / "d1" / "same.csv"), str(tmp_path / "d2" / "same.csv"), "--prefix", run)

    assert result.exit_code == 1
    assert f"d1/same.csv and {tmp_path}/d2/same.csv would both be uploaded to incoming/{run}same.csv" in result.output
    assert listed(moto_settings, f"incoming/{run}") == []


def test_an_empty_directory_is_refused_naming_it(moto_settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = cli(moto_settings, "put", str(tmp_path / "empty"))
    assert result.exit_code == 1 and f"{tmp_path / 'empty'} holds no file to upload" in result.output


def succeed(settings: Settings, key: str, etag: str, size: int) -> ObjectRef:
    ledger, ref = ledger_for(settings), ObjectRef(settings.bucket, key, etag, size)
    claim = ledger.claim(ref, "metadata", "t", "w", 60)
    assert claim.owner and ledger.mark_succeeded(ref, claim.owner, [f"processed/metadata/{key}/metadata.json"], 3, "0" * 64)
    return ref


def test_a_file_already_processed_with_the_same_content_is_reported_not_uploaded(moto_settings: Settings, tmp_path: Path, run: str) -> None:
    same, changed = tmp_path / "same.txt", tmp_path / "changed.txt"
    same.write_text("processed before")
    changed.write_text("new content")
    inbox = f"incoming/{run}"
    succeed(moto_settings, f"{inbox}same.txt", _s3_etag(same), same.stat().st_size)
    succeed(moto_settings, f"{inbox}changed.txt", "an-older-etag", 3)

    result = cli(moto_settings, "put", str(same), str(changed), "--prefix", run)

    assert result.exit_code == 0, result.output
    assert f"s3://{moto_settings.bucket}/{inbox}same.txt: already processed (same content)" in result.output
    assert listed(moto_settings, inbox) == [f"{inbox}changed.txt"]


def test_the_etag_put_predicts_is_the_one_s3_gives(moto_settings: Settings, tmp_path: Path, run: str) -> None:
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(b"x" * 1000)
    large.write_bytes(bytes(range(256)) * (9 * 1024 * 1024 // 256))  # past the 8 MiB multipart threshold
    s3 = moto_settings.client("s3")
    for path in (small, large):
        s3.upload_file(str(path), moto_settings.bucket, f"elsewhere/{run}{path.name}")
        head = s3.head_object(Bucket=moto_settings.bucket, Key=f"elsewhere/{run}{path.name}")
        assert head["ETag"].strip('"') == _s3_etag(path), path.name


def test_retry_force_processes_a_succeeded_file_again_and_plain_retry_says_how(moto_settings: Settings, run: str) -> None:
    purge_queues(moto_settings)
    key = f"incoming/{run}done.txt"
    ref = succeed(moto_settings, key, "e1", 10)

    plain = cli(moto_settings, "retry", key)
    assert plain.exit_code == 1 and f"{key} is succeeded, not failed: `dropq retry --force {key}` processes it again" in plain.output

    forced = cli(moto_settings, "retry", "--force", key)
    assert forced.exit_code == 0, forced.output
    assert ledger_for(moto_settings).get(ref.bucket, key)["state"] == QUEUED
    (message,) = [decode_task_message(m["Body"]) for m in drain(moto_settings, "default")]
    assert (message["body"]["kwargs"]["key"], message["body"]["kwargs"]["etag"]) == (key, "e1")

"""Workers' S3 writes against a moto server: outputs go up side by side, small ones in one request, large ones in parts."""

from __future__ import annotations

from pathlib import Path

from dropq.settings import Settings
from tasks.storage import MULTIPART_THRESHOLD, upload_folder


def test_a_folder_of_outputs_lands_under_its_prefix_with_content_types(moto_settings: Settings, tmp_path: Path) -> None:
    s3 = moto_settings.client("s3")
    (tmp_path / "sub").mkdir()
    files = {
        "manifest.json": b'{"ok": true}',
        "thumb-128.jpg": b"\xff\xd8\xff" + b"j" * 500,
        "sub/data.parquet": b"PAR1" + b"p" * 1000,
        "big.bin": b"\0" * (MULTIPART_THRESHOLD + 1024),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)

    prefix = "processed/test/storage/"
    keys = upload_folder(s3, moto_settings.bucket, tmp_path, prefix)

    assert keys == sorted(prefix + name for name in files)
    for name, content in files.items():
        head = s3.head_object(Bucket=moto_settings.bucket, Key=prefix + name)
        assert head["ContentLength"] == len(content), name
    assert s3.head_object(Bucket=moto_settings.bucket, Key=prefix + "manifest.json")["ContentType"] == "application/json"
    assert s3.head_object(Bucket=moto_settings.bucket, Key=prefix + "sub/data.parquet")["ContentType"] == "application/vnd.apache.parquet"
    # The large one went up in parts: S3 gives a multipart upload an ETag ending in "-<parts>".
    assert "-" in s3.head_object(Bucket=moto_settings.bucket, Key=prefix + "big.bin")["ETag"]
    assert s3.get_object(Bucket=moto_settings.bucket, Key=prefix + "thumb-128.jpg")["Body"].read() == files["thumb-128.jpg"]


def test_an_output_whose_key_would_pass_s3s_limit_is_refused_with_why_and_nothing_is_uploaded(
    moto_settings: Settings, tmp_path: Path
) -> None:
    import pytest

    from dropq.errors import InputError

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "part-000000000000.parquet").write_bytes(b"x")
    (tmp_path / "profile.json").write_bytes(b"{}")
    prefix = "processed/tables/incoming/" + "k" * (1024 - len("processed/tables/incoming/") - 20) + "/"
    # A prefix of 1,005 bytes: the part's name (30) makes a key of 1,035 bytes; profile.json's (12) would fit
    too_long = r"the key is too long: its output 'data/part-000000000000.parquet' would have a key of 1035 bytes"
    with pytest.raises(InputError, match=too_long):
        upload_folder(moto_settings.client("s3"), moto_settings.bucket, tmp_path, prefix)
    listed = moto_settings.client("s3").list_objects_v2(Bucket=moto_settings.bucket, Prefix=prefix[:200])
    assert listed.get("KeyCount") == 0, "not even the output that would fit"

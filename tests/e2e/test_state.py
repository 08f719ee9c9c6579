"""`dropq up` keeps its state across restarts: the bucket, the ledger and the waiting messages come back (and nothing
done is done again); `--fresh` starts empty."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dropq.ledger import SUCCEEDED, ledger_for
from dropq.queues import queue_counts
from dropq.settings import local_settings
from infra.local import state
from infra.local.cloud import LocalCloud
from infra.local.server import free_port
from tests.conftest import wait_for, wait_for_outcome

pytestmark = pytest.mark.e2e


def test_a_restarted_cloud_has_its_files_ledger_and_waiting_messages_and_a_fresh_one_is_empty(tmp_path: Path) -> None:
    settings = local_settings(port=free_port(), state_dir=str(tmp_path))
    done, waiting = "incoming/kept.txt", "incoming/urgent/waiting.txt"
    output = f"processed/metadata/{done}/metadata.json"

    unheard, big = "incoming/unheard.txt", "elsewhere/big.bin"

    # A run: one file processed, one waiting in the urgent queue, which has no worker; one whose notification never
    # came (in flight when the cloud stopped); and an object uploaded in parts
    with LocalCloud(settings, workers={"default": 1}, keep_state=True) as first:
        s3, ledger = settings.client("s3"), ledger_for(settings)
        s3.put_object(Bucket=settings.bucket, Key=done, Body=b"keep me\n")
        assert wait_for_outcome(ledger, settings.bucket, done)["state"] == SUCCEEDED
        s3.put_object(Bucket=settings.bucket, Key=waiting, Body=b"wait for me\n")
        sqs, urgent = settings.client("sqs"), settings.queue_url("urgent")
        wait_for(lambda: queue_counts(sqs, urgent)["visible"] == 1, 30, "the urgent file's message in its queue")
        (tmp_path / "big.bin").write_bytes(bytes(range(256)) * (9 * 1024 * 1024 // 256))
        s3.upload_file(str(tmp_path / "big.bin"), settings.bucket, big)  # 8 MiB parts
        parts_etag = s3.head_object(Bucket=settings.bucket, Key=big)["ETag"]
        s3.put_bucket_notification_configuration(Bucket=settings.bucket, NotificationConfiguration={})
        s3.put_object(Bucket=settings.bucket, Key=unheard, Body=b"nobody told the producer\n")
    assert first.saved is not None and first.saved.objects == 5 and first.saved.messages[settings.physical_name("urgent")] == 1
    assert parts_etag.strip('"').endswith("-2")

    # The next run: the same bucket and ledger, the waiting file processed, the done one not again
    with LocalCloud(settings, workers={"default": 1, "urgent": 1}, keep_state=True) as second:
        # The file whose message was put back is not enqueued again; the one whose notification never came is
        assert second.restored is not None and second.restored.objects == 5 and second.restored.backfilled == 1
        s3, ledger = settings.client("s3"), ledger_for(settings)
        assert s3.get_object(Bucket=settings.bucket, Key=output)["Body"].read()
        assert s3.head_object(Bucket=settings.bucket, Key=big)["ETag"] == parts_etag, "put back in the same parts"
        assert wait_for_outcome(ledger, settings.bucket, waiting)["state"] == SUCCEEDED
        assert wait_for_outcome(ledger, settings.bucket, unheard)["state"] == SUCCEEDED, "enqueued once the state was back"
        time.sleep(2)  # a restored file that set off processing would have been claimed by now
        assert (ledger.get(settings.bucket, done) or {}).get("completions") == 1

    # A fresh run starts empty
    with LocalCloud(settings, workers=0, keep_state=True, fresh=True) as fresh:
        assert fresh.restored is None
        assert settings.client("s3").list_objects_v2(Bucket=settings.bucket).get("KeyCount") == 0
        assert ledger_for(settings).get(settings.bucket, done) is None


def test_a_cloud_that_fails_to_start_keeps_the_state_it_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = local_settings(port=free_port(), state_dir=str(tmp_path))
    with LocalCloud(settings, workers=0, keep_state=True):
        settings.client("s3").put_object(Bucket=settings.bucket, Key="elsewhere/precious.txt", Body=b"do not lose me")
    saved = (tmp_path / "state" / "s3.json").read_text()

    def broken(_: object) -> None:
        raise RuntimeError("the restore broke halfway")

    monkeypatch.setattr(state, "restore", broken)
    with pytest.raises(RuntimeError, match="the restore broke halfway"):
        LocalCloud(settings, workers=0, keep_state=True).start()
    assert (tmp_path / "state" / "s3.json").read_text() == saved, "nothing saved over it"

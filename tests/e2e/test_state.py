"""`dropq up` keeps its state across restarts: the bucket, the ledger and the waiting messages come back (and nothing
done is done again); `--fresh` starts empty."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dropq.ledger import QUEUED, SUCCEEDED, ledger_for
from dropq.settings import local_settings
from infra.local.cloud import LocalCloud
from infra.local.server import free_port
from tests.conftest import wait_for, wait_for_outcome

pytestmark = pytest.mark.e2e


def test_a_restarted_cloud_has_its_files_ledger_and_waiting_messages_and_a_fresh_one_is_empty(tmp_path: Path) -> None:
    settings = local_settings(port=free_port(), state_dir=str(tmp_path))
    done, waiting = "incoming/kept.txt", "incoming/urgent/waiting.txt"
    output = f"processed/metadata/{done}/metadata.json"

    # A run: one file processed, one waiting in the urgent queue, which has no worker
    with LocalCloud(settings, workers={"default": 1}, keep_state=True) as first:
        s3, ledger = settings.client("s3"), ledger_for(settings)
        s3.put_object(Bucket=settings.bucket, Key=done, Body=b"keep me\n")
        assert wait_for_outcome(ledger, settings.bucket, done)["state"] == SUCCEEDED
        s3.put_object(Bucket=settings.bucket, Key=waiting, Body=b"wait for me\n")
        wait_for(lambda: (ledger.get(settings.bucket, waiting) or {}).get("state") == QUEUED, 30, "the urgent file to be queued")
    assert first.saved is not None and first.saved.objects == 3 and first.saved.messages[settings.physical_name("urgent")] == 1

    # The next run: the same bucket and ledger, the waiting file processed, the done one not again
    with LocalCloud(settings, workers={"default": 1, "urgent": 1}, keep_state=True) as second:
        assert second.restored is not None and second.restored.objects == 3
        s3, ledger = settings.client("s3"), ledger_for(settings)
        assert s3.get_object(Bucket=settings.bucket, Key=output)["Body"].read()
        assert wait_for_outcome(ledger, settings.bucket, waiting)["state"] == SUCCEEDED
        time.sleep(2)  # a restored file that set off processing would have been claimed by now
        assert (ledger.get(settings.bucket, done) or {}).get("completions") == 1

    # A fresh run starts empty
    with LocalCloud(settings, workers=0, keep_state=True, fresh=True) as fresh:
        assert fresh.restored is None
        assert settings.client("s3").list_objects_v2(Bucket=settings.bucket).get("KeyCount") == 0
        assert ledger_for(settings).get(settings.bucket, done) is None

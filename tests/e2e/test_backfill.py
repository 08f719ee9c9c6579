"""Files already in S3, end to end: a bucket filled before dropq's notification existed is backfilled by the real
`dropq` command, once, across a Ctrl-C; and a pipeline's version bump reprocesses exactly its files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dropq.ledger import SUCCEEDED, Ledger, file_pk, ledger_for
from infra.local.cloud import LocalCloud
from infra.local.provision import provision_bucket
from ops.cli import main
from tasks.pipelines import VERSIONS
from tests.conftest import sent_messages, wait_for
from tests.workloads import METADATA_VERSION

pytestmark = pytest.mark.e2e
DROPQ = str(Path(sys.executable).with_name("dropq"))


@contextmanager
def before_dropq(cloud: LocalCloud) -> Iterator[None]:
    """The bucket as it was before dropq: no notification of the inbox (files put now are never announced)."""
    s3 = cloud.settings.client("s3")
    s3.put_bucket_notification_configuration(Bucket=cloud.settings.bucket, NotificationConfiguration={})
    try:
        yield
    finally:
        provision_bucket(s3, cloud.settings.client("sqs"), cloud.settings)


def put_all(cloud: LocalCloud, files: dict[str, bytes]) -> dict[str, str]:
    """Put the files side by side; their ETags by key."""
    s3 = cloud.settings.client("s3")

    def put(item: tuple[str, bytes]) -> tuple[str, str]:
        return item[0], s3.put_object(Bucket=cloud.settings.bucket, Key=item[0], Body=item[1])["ETag"].strip('"')

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(put, files.items()))


def entries(ledger: Ledger, bucket: str, etags: dict[str, str]) -> dict[str, dict[str, Any]]:
    found = ledger.entries((file_pk(bucket, key), etag) for key, etag in etags.items())
    return {entry["key"]: entry for entry in found}


def all_succeeded(ledger: Ledger, bucket: str, etags: dict[str, str], timeout: float) -> dict[str, dict[str, Any]]:
    def done() -> dict[str, dict[str, Any]] | None:
        found = entries(ledger, bucket, etags)
        return found if len(found) == len(etags) and all(e["state"] == SUCCEEDED for e in found.values()) else None

    return wait_for(done, timeout, f"{len(etags)} files to succeed")


def cli(cloud: LocalCloud, state_dir: Path, *args: str) -> Any:
    env = {**cloud.exports(), "DROPQ_STATE_DIR": str(state_dir)}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_files_there_before_dropq_are_backfilled_once_and_a_second_run_enqueues_none(
    cloud: LocalCloud, cloud_ledger: Ledger, tmp_path: Path
) -> None:
    folder, bucket = f"incoming/existing-{uuid.uuid4().hex[:8]}/", cloud.settings.bucket
    files = {f"{folder}notes/{i:03d}.txt": f"note {i}\n".encode() for i in range(200)}
    files.update({f"{folder}tables/{i}.csv": f"a,b\n{i},x\n".encode() for i in range(10)})
    with before_dropq(cloud):
        etags = put_all(cloud, files)
    assert entries(cloud_ledger, bucket, etags) == {}, "nothing announced them"

    first = cli(cloud, tmp_path, "backfill", folder)
    assert first.exit_code == 0, first.output
    assert "listed 210, enqueued 210, skipped none" in first.output and "  200 metadata on default" in first.output

    done = all_succeeded(cloud_ledger, bucket, etags, timeout=180)
    assert {entry["completions"] for entry in done.values()} == {1}
    assert {entry["pipeline"] for key, entry in done.items() if key.endswith(".csv")} == {"tables"}

    second = cli(cloud, tmp_path, "backfill", f"s3://{bucket}/{folder}")
    assert second.exit_code == 0 and "listed 210, enqueued 0, skipped 210 succeeded" in second.output, second.output


def test_a_backfill_stopped_with_ctrl_c_carries_on_and_enqueues_each_file_once(
    cloud: LocalCloud, cloud_ledger: Ledger, tmp_path: Path
) -> None:
    folder, bucket = f"incoming/resumed-{uuid.uuid4().hex[:8]}/", cloud.settings.bucket
    with before_dropq(cloud):
        etags = put_all(cloud, {f"{folder}{i:03d}.txt": f"{i}\n".encode() for i in range(120)})
    env = {**os.environ, **cloud.exports(), "DROPQ_STATE_DIR": str(tmp_path)}
    command, recorded = [DROPQ, "backfill", folder, "--page-size", "20"], cloud.recording

    running = subprocess.Popen([*command, "--rate", "25"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(entries(cloud_ledger, bucket, etags)) >= 45, 30, "the first pages to be enqueued")
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=30)
    assert running.returncode == 1 and "run the same command again to carry on" in err, (out, err)
    stopped_at = len(entries(cloud_ledger, bucket, etags))
    assert stopped_at < 120, "stopped halfway"

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    # Counted over both runs; the page cut short is listed again, and what it had enqueued is found queued.
    assert "carrying on after" in resumed.stdout and "listed 120, enqueued " in resumed.stdout, resumed.stdout
    done = all_succeeded(cloud_ledger, bucket, etags, timeout=120)
    assert {entry["attempts"] for entry in done.values()} == {1} and {entry["completions"] for entry in done.values()} == {1}
    assert recorded is not None
    keys = (str(m["body"]["kwargs"].get("key", "")) for m in sent_messages(recorded) if m)
    sent = Counter(key for key in keys if key.startswith(folder))
    assert sent == Counter(list(etags)), "each file's task was sent once, across the two runs"


def test_a_version_bump_reprocesses_exactly_the_files_that_pipeline_made(
    workloads_cloud: LocalCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud, bucket = workloads_cloud, workloads_cloud.settings.bucket
    ledger = ledger_for(cloud.settings)
    folder = f"incoming/versions-{uuid.uuid4().hex[:8]}/"
    notes = put_all(cloud, {f"{folder}n-{i}.txt": f"note {i}\n".encode() for i in range(12)})
    tables = put_all(cloud, {f"{folder}t-{i}.csv": f"a,b\n{i},y\n".encode() for i in range(4)})
    before = all_succeeded(ledger, bucket, {**notes, **tables}, timeout=120)
    assert {entry["pipeline_version"] for entry in before.values()} == {1}
    outputs = cloud.settings.client("s3")
    output_of = f"processed/metadata/{next(iter(notes))}/metadata.json"
    first_made = outputs.head_object(Bucket=bucket, Key=output_of)["LastModified"]

    def restart_workers(version: str) -> None:
        """The default queue's workers (where metadata files go), restarted with metadata at `version`."""
        for workers in (w for w in cloud.pools if "default" in w.pool.queues):
            running = workers.running
            workers.scale_to(0)
            workers.env[METADATA_VERSION] = version
            workers.scale_to(running)

    # Left at version 2 afterwards: no other test of this cloud looks at metadata's version.
    restart_workers("2")
    monkeypatch.setitem(VERSIONS, "metadata", 2)  # as the workers now have it
    result = cli(cloud, tmp_path, "reprocess", "--pipeline", "metadata", "--prefix", folder)
    assert result.exit_code == 0, result.output
    assert "listed 16, enqueued 12" in result.output and "  12 metadata on default" in result.output

    def bumped() -> dict[str, dict[str, Any]] | None:
        found = entries(ledger, bucket, notes)
        return found if all(e["state"] == SUCCEEDED and e.get("pipeline_version") == 2 for e in found.values()) else None

    redone = wait_for(bumped, 120, "the notes to be made again by version 2")
    assert {entry["completions"] for entry in redone.values()} == {2}
    untouched = entries(ledger, bucket, tables)
    assert {(e["completions"], e["pipeline_version"]) for e in untouched.values()} == {(1, 1)}, "other pipelines' files stay"
    made = outputs.head_object(Bucket=bucket, Key=output_of)["LastModified"]
    assert made > first_made, "the new output replaced the old one under its key"

    again = cli(cloud, tmp_path, "reprocess", "--pipeline", "metadata", "--prefix", folder)
    assert "enqueued 0" in again.output and "12 made by version 2 or later" in again.output, again.output

"""With message signing on, workers run what the producer signed and refuse unsigned or forged messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from dropq.ledger import ledger_for
from dropq.protocol import PROCESS_TASK, build_task_message
from dropq.settings import local_settings
from dropq.signing import Signer
from infra.local.cloud import LocalCloud
from infra.local.server import free_port
from ops.status import queue_counts
from tests.conftest import wait_for, wait_for_outcome
from tests.faults.inject import drop, send_task
from tests.signing_keys import make_identity

pytestmark = pytest.mark.e2e


def test_signed_drops_are_processed_and_unsigned_or_forged_messages_end_in_the_dlq(tmp_path: Path) -> None:
    key, cert = make_identity(tmp_path / "trusted", "dropq")
    forged_key, forged_cert = make_identity(tmp_path / "untrusted", "intruder")
    settings = local_settings(
        port=free_port(),
        state_dir=str(tmp_path / "state"),
        signing_key=str(key),
        signing_cert=str(cert),
        signing_cert_store=str(tmp_path / "trusted"),
    )
    with LocalCloud(settings, workers={"default": 1}):
        ledger = ledger_for(settings)
        drop(settings, {"incoming/signed/ok.txt": b"signed by the producer\n"})
        assert wait_for_outcome(ledger, settings.bucket, "incoming/signed/ok.txt")["state"] == "succeeded"

        refs = drop(settings, {"work/signed/plain.txt": b"plain\n", "work/signed/forged.txt": b"forged\n"})
        send_task(settings, refs["work/signed/plain.txt"], "metadata")
        forger = Signer.from_files(str(forged_key), str(forged_cert))
        kwargs = {**refs["work/signed/forged.txt"].to_dict(), "pipeline": "metadata"}
        _, forged = build_task_message(PROCESS_TASK, "default", kwargs, signer=forger)
        sqs = settings.client("sqs")
        sqs.send_message(QueueUrl=settings.queue_url("default"), MessageBody=forged)

        wait_for(lambda: queue_counts(sqs, settings.queue_url("default-dlq"))["visible"] == 2, 90, "both messages in the DLQ")
        assert ledger.get(settings.bucket, "work/signed/plain.txt") is None, "an unsigned message never ran"
        assert ledger.get(settings.bucket, "work/signed/forged.txt") is None, "a forged message never ran"

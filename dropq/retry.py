"""Retry a failed file: queue it again in the ledger and send its task, as the producer would have."""

from __future__ import annotations

from typing import Any

from dropq.errors import ActionError
from dropq.ledger import FAILED, Ledger, entry_ref
from dropq.settings import Settings
from dropq.signing import Signer
from lambdas.producer.enqueue import Enqueued, plan, send_all


def retry_file(key: str, settings: Settings, ledger: Ledger, sqs: Any, signer: Signer | None = None) -> Enqueued:
    """Enqueue the newest version of `key` again; ActionError saying why when it is unknown or not failed."""
    entry = ledger.get(settings.bucket, key)
    if entry is None:
        raise ActionError(f"no file {key!r} in the ledger of s3://{settings.bucket}/ (keys look like 'incoming/photo.jpg')")
    if entry.get("state") != FAILED:
        raise ActionError(f"{key} is {entry.get('state')}, not failed: only a failed file is retried")
    ref = entry_ref(entry)
    item = plan(ref, settings, signer)
    if not ledger.retry(ref, item.task_id, queue=item.queue):
        raise ActionError(f"{key} changed while it was being retried; look at it again")
    send_all(sqs, settings.queue_url(item.queue), [item])
    return item

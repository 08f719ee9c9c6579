"""Retry failed files: queue each again in the ledger and send its task, as the producer would have; one, or many side by side."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from dropq.enqueue import Enqueued, plan, send_all
from dropq.errors import ActionError, ProducerError
from dropq.ledger import FAILED, QUEUED, RUNNING, SUCCEEDED, Ledger, entry_ref, unheld
from dropq.settings import Settings
from dropq.signing import Signer


def retry_file(
    key: str, settings: Settings, ledger: Ledger, sqs: Any, signer: Signer | None = None, force: bool = False, resend_queued: bool = False
) -> Enqueued:
    """Enqueue the newest version of `key` again, a failed one (or, with `force`, a succeeded one too); with
    `resend_queued`, send again the message of one queued, or running with its lease run out (its message may be gone:
    a retry cut short before its send, a message dead-lettered or expired). ActionError saying why when it is unknown
    or in another state, or when its message could not be sent."""
    versions = ledger.versions(settings.bucket, key)
    if not versions:
        raise ActionError(f"no file {key!r} in the ledger of s3://{settings.bucket}/ (keys look like 'incoming/photo.jpg')")
    entry, older = versions[0], versions[1:]
    state = entry.get("state")
    failed_before = next((v for v in older if v.get("state") == FAILED), None)
    if state == SUCCEEDED and not force and failed_before is not None:
        # The failure people see is of a version uploaded again since: the newer one is the file now, and it succeeded.
        raise ActionError(
            f"{key}: the version that failed (ETag {failed_before['sk']}) was replaced by a newer upload (ETag {entry['sk']}, "
            f"{entry.get('updated_at')}), which succeeded: nothing to retry (`dropq retry --force {key}` processes it again)"
        )
    if state == SUCCEEDED and not force:
        raise ActionError(f"{key} is succeeded, not failed: `dropq retry --force {key}` processes it again")
    if state not in (FAILED, SUCCEEDED) and not (unheld(entry) and resend_queued):
        lease = " and its lease is live: it runs now" if state == RUNNING else ""
        raise ActionError(f"{key} is {state}{lease}, not failed: only a failed file is retried (or a succeeded one, with --force)")
    ref = entry_ref(entry)
    item = plan(ref, settings, signer)
    if state in (QUEUED, RUNNING):
        # Its message may be gone: sent again, no write. If it still waits, whichever comes first is claimed (a running
        # one's is taken over, its lease run out), the other skipped.
        again = True
    elif state == FAILED:
        again = ledger.retry(ref, item.task_id, queue=item.queue, entry=entry)
    else:
        again = ledger.process_again(ref, item.task_id, item.queue, entry=entry)
    if not again:
        raise ActionError(f"{key} changed while it was being retried; look at it again")
    try:
        send_all(sqs, settings.queue_url(item.queue), [item])
    except ProducerError as exc:
        raise ActionError(f"{key} is queued in the ledger but its message was not sent ({exc}): `dropq retry {key}` sends it") from exc
    return item


# Files retried side by side by `retry_files` (each is a Query, an UpdateItem and a SendMessageBatch).
RETRIERS = 8


@dataclass
class Retried:
    """What a retry of many files did: each one queued again, and each one skipped, with why (no longer failed, mostly)."""

    queued: list[Enqueued] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def retry_files(
    keys: Iterable[str],
    settings: Settings,
    ledger: Ledger,
    sqs: Any,
    signer: Signer | None = None,
    done: Callable[[str], None] = lambda key: None,
) -> Retried:
    """`retry_file` each key, a few side by side; a file that is not to be retried (any more) is skipped with the reason.

    `done` is called with each key once it is retried or skipped (a progress bar).
    """
    outcome = Retried()
    with ThreadPoolExecutor(RETRIERS) as pool:
        pending = {pool.submit(retry_file, key, settings, ledger, sqs, signer): key for key in dict.fromkeys(keys)}
        for future in as_completed(pending):
            key = pending[future]
            try:
                outcome.queued.append(future.result())
            except ActionError as exc:
                outcome.skipped[key] = str(exc)
            done(key)
    return outcome

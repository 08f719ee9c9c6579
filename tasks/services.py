"""The worker's shared services, for every task module: this process's AWS clients and ledgers, its event log, and
how a ledger write that fails or a file taken over by another attempt is handled. No task module imports another's."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from celery.exceptions import Reject

from dropq.ledger import RUNNING, Ledger, ledger_for
from dropq.objects import ObjectRef
from dropq.observe import WORKER, deployment, event_logger, log_event
from tasks.app import settings

logger = logging.getLogger("dropq.worker")
# A file's events and outcome metrics (dropq/observe.py); `service` is this deployment's metrics dimension.
events = event_logger(WORKER)
service = deployment(settings.prefix)

# Lease renewals give up fast and are tried again: a renewal stuck in botocore's default 60 s timeout and
# retries would outlive the lease it renews.
LEASE_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 1})

_clients: dict[int, tuple[Any, Ledger, Ledger]] = {}


def clients() -> tuple[Any, Ledger, Ledger]:
    """This process's S3 client, ledger, and ledger for lease renewals (boto3 clients must not cross a fork)."""
    pid = os.getpid()
    if pid not in _clients:
        leases = ledger_for(settings, client=settings.client("dynamodb", config=LEASE_CLIENT_CONFIG))
        _clients[pid] = (settings.client("s3"), ledger_for(settings), leases)
    return _clients[pid]


def superseded(ref: ObjectRef, task_id: str, pipeline: str) -> dict[str, Any]:
    """Log that another attempt took the file over (this one's lease ran out) and records its outcome; the task's result."""
    reason = "another attempt took the file over; it records the outcome"
    log_event(events, "superseded", ref=ref, task_id=task_id, state=RUNNING, level="warning", pipeline=pipeline, reason=reason)
    return {"state": "superseded", "key": ref.key}


@contextmanager
def ledger_writes(task_id: str) -> Iterator[None]:
    """A ledger write that fails gives the message back (towards the DLQ if it keeps failing), never drops it."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        logger.warning("task %s: the ledger could not be written, the message goes back to its queue: %s", task_id, exc)
        raise Reject(f"the ledger could not be written: {exc}", requeue=True) from exc

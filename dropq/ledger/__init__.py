"""The ledger: what happened to each dropped file, in DynamoDB.

One item per object version (bucket, key, ETag): pk = "file#s3://bucket/key", sk = ETag, with its
state (running -> succeeded | failed; queued while waiting for a retry), timestamps, pipeline, outputs and, on failure,
a reason a person understands. Worker heartbeats live in the same table under pk = "worker", and
outcome counts per minute under pk = "counts#<day>" (dropq/counts.py).

Two indexes (dropq/topology.py), each copying keys only, so that a write which changes no index key
costs them nothing (lease renewals, webhooks, an outcome): `recent` has every version by the time it
entered the ledger (its first claim, or a backfill's queueing), `failed` the failed ones. Their partition
keys are sharded (dropq/shards.py): no key takes more than its share of the traffic, and readers ask
every shard. A file S3 announces is first written by its claim: one that succeeds at once costs three write
units (the claim, its `recent` index entry, the outcome).

Exactly-once in effect: a worker `claim`s a file with a lease it renews while it works (`hold`); a
second delivery of the file (a repeated S3 event among them) finds it ended (and is skipped) or leased (and
waits), so one attempt at a time runs it and one outcome is recorded (`completions` counts successes).

The package, one concept a module: `codec.py` (values, the time format, keys), `states.py` (the states, the
transitions' conditions, claims, attempt records), `table.py` (the table and its one conditional write),
`files.py` (the transitions), `reads.py` (bounded reads), `periodic.py` (a schedule's runs), `heartbeats.py`
(workers alive), `leases.py` (holding a lease while working).
"""

from __future__ import annotations

from typing import Any

from dropq.ledger.codec import decode_item, entry_ref, file_pk, iso
from dropq.ledger.files import FileStates
from dropq.ledger.heartbeats import WORKER_PK, WORKER_STALE_SECONDS, Heartbeats
from dropq.ledger.leases import hold
from dropq.ledger.periodic import SCHEDULE_PK, PeriodicRuns
from dropq.ledger.reads import BATCH_GET_KEYS, FileReads
from dropq.ledger.states import (
    FAILED,
    FAILED_INDEX,
    HISTORY,
    HISTORY_KEPT,
    LOST,
    QUEUED,
    RECENT,
    RETRIED,
    RUNNING,
    STATES,
    SUCCEEDED,
    Claim,
    attempt_record,
    closed_history,
    last_recorded,
    unheld,
)

__all__ = [
    "BATCH_GET_KEYS",
    "FAILED",
    "FAILED_INDEX",
    "HISTORY",
    "HISTORY_KEPT",
    "LOST",
    "QUEUED",
    "RECENT",
    "RETRIED",
    "RUNNING",
    "SCHEDULE_PK",
    "STATES",
    "SUCCEEDED",
    "WORKER_PK",
    "WORKER_STALE_SECONDS",
    "Claim",
    "Ledger",
    "attempt_record",
    "closed_history",
    "decode_item",
    "entry_ref",
    "file_pk",
    "hold",
    "iso",
    "last_recorded",
    "ledger_for",
    "unheld",
]


class Ledger(FileStates, FileReads, PeriodicRuns, Heartbeats):
    """Reads and writes file states, periodic runs and heartbeats; every transition is one conditional DynamoDB write."""


def ledger_for(settings: Any, client: Any = None) -> Ledger:
    """The ledger of a deployment described by `settings` (a `dropq.settings.Settings`)."""
    topology = settings.topology
    table_name = settings.physical_name(topology.ledger_table.name)
    return Ledger(
        topology.ledger_table,
        table_name,
        client or settings.client("dynamodb"),
        topology.ledger_ttl_seconds,
        default_queue=topology.default_queue,
        failed_ttl_seconds=topology.failed_ttl_seconds,
        output_prefix=topology.output_prefix,
    )

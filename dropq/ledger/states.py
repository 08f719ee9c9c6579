"""A file's states and how they change: the states, the conditions each transition is written under (one named
constant each), what a claim found, and the records of ended attempts an entry keeps."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dropq.ledger import codec
from dropq.ledger.codec import iso

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
# DynamoDB's item size limit is 400 KB; a reason longer than this is cut, never the write refused.
MAX_REASON_CHARS = 2000
# An earlier attempt's reason is cut shorter: the entry may keep twenty.
MAX_HISTORY_REASON_CHARS = 300
# Attributes conditions name as `#name` (`state` is a DynamoDB reserved word).
CONDITION_ATTRIBUTES = ("state", "lease_owner", "lease_until")
# Every attribute a condition may name as `#name` (a reprocessing's names the pipeline and its version too).
CONDITION_NAMES = (*CONDITION_ATTRIBUTES, "pipeline", "pipeline_version")
# The ledger's indexes (dropq/topology.py: the ledger table).
RECENT, FAILED_INDEX = "recent", "failed"
# An entry's `history`: its attempts that ended before the last one (whose start, end and worker are the entry's own
# fields), each an `attempt_record`. Each record is written by a write its attempt makes anyway: a retry's release,
# the next attempt's outcome for one that lost its lease, an operator's retry or reprocessing for the attempt it
# closes. A file that succeeds at once stores and writes nothing more; an operator's retry keeps the newest few.
HISTORY = "history"
HISTORY_KEPT = 20
# How an earlier attempt ended, besides a file state: given back to be retried, or lost (its worker stopped).
RETRIED, LOST = "retried", "lost"

# The conditions of the transitions, in DynamoDB's expression syntax (`#state` etc.: CONDITION_NAMES).
# A file may be queued (by a backfill) when it is new or queued already, not once it runs or is done.
NEW_OR_QUEUED = "attribute_not_exists(#state) OR #state = :queued"
# A file may be claimed when it is new (most files: the claim creates its entry), queued (a retry, a backfill, an
# operator's retry), or running with a lease run out (its worker died). Never once it ended: a repeated delivery of a
# succeeded or failed file is caught here (`dropq retry` queues a failed one again first).
CLAIMABLE = (
    "attribute_not_exists(#state) OR #state = :queued OR "
    "(#state = :running AND (attribute_not_exists(#lease_until) OR #lease_until < :now))"
)
# Only the attempt holding the lease records, splits, renews or gives the file back.
HELD = "#state = :running AND #lease_owner = :owner"
IS_FAILED = "#state = :failed"
IS_SUCCEEDED = "#state = :succeeded"
# Made by an older version of a pipeline (an entry without a version was made by version 1).
OLDER_VERSION = "#pipeline_version < :below"
UNVERSIONED = "attribute_not_exists(#pipeline_version)"
# A schedule's period is run once: claimed when new or its claim ran out, finished by the run holding it.
PERIOD_CLAIMABLE = "attribute_not_exists(#state) OR (#state = :running AND lease_until < :now)"
PERIOD_HELD = "task_id = :task"


@dataclass(frozen=True)
class Claim:
    """What `Ledger.claim` found: the file is ours (`owner` is our lease), or why not."""

    acquired: bool
    owner: str | None
    state: str
    lease_remaining: float
    attempts: int
    # The file runs as parts (a chord) that finish it: another delivery has nothing to do.
    split: bool = False
    # When and where this attempt started, and the record of one before it that lost its lease (if any), which the
    # attempt's own outcome write adds to the entry's history.
    started_at: str | None = None
    worker: str | None = None
    lost: tuple[dict[str, Any], ...] = ()

    def ended(self, outcome: str, reason: str | None = None) -> dict[str, Any]:
        """The record of this attempt, ending now."""
        return attempt_record(self.attempts, self.started_at, self.worker, outcome, reason, finished_at=iso(codec.now()))


def attempt_record(
    attempt: int, started_at: str | None, worker: str | None, outcome: str, reason: str | None = None, finished_at: str | None = None
) -> dict[str, Any]:
    """One ended attempt as the entry's `history` keeps it (`finished_at` None: it never ended, its lease ran out)."""
    if reason and len(reason) > MAX_HISTORY_REASON_CHARS:
        reason = reason[: MAX_HISTORY_REASON_CHARS - 1] + "…"
    return {
        "attempt": attempt,
        "started_at": started_at,
        "finished_at": finished_at,
        "worker": worker,
        "outcome": outcome,
        "reason": reason,
    }


def last_recorded(entry: dict[str, Any]) -> bool:
    """Whether the entry's own last attempt is in its history already (given back to be retried, and not claimed since)."""
    history = entry.get(HISTORY) or []
    return bool(history) and history[-1].get("started_at") == entry.get("started_at")


def unheld(entry: dict[str, Any]) -> bool:
    """Whether a file in flight is held by no live attempt: queued, or running with its lease run out (what CLAIMABLE
    lets the next claim take, new files apart)."""
    state = entry.get("state")
    return state == QUEUED or (state == RUNNING and float(entry.get("lease_until") or 0) < time.time())


def lost_record(entry: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The record of the attempt a running entry's lapsed lease leaves unfinished, unless it is recorded already."""
    if entry.get("state") != RUNNING or not entry.get("started_at") or last_recorded(entry):
        return ()
    reason = "its worker stopped (or stalled) before it ended, and its lease ran out"
    return (attempt_record(int(entry.get("attempts") or 1), entry["started_at"], entry.get("worker"), LOST, reason),)


def closed_history(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """An ended file's history with its last attempt added (the newest `HISTORY_KEPT`): what an operator's retry writes
    before a new attempt replaces the entry's own start, end and worker."""
    history = list(entry.get(HISTORY) or [])
    if entry.get("started_at") and not last_recorded(entry):
        outcome = str(entry.get("state"))
        history.append(
            attempt_record(
                int(entry.get("attempts") or 1),
                entry["started_at"],
                entry.get("worker"),
                outcome,
                entry.get("reason"),
                entry.get("finished_at"),
            )
        )
    return history[-HISTORY_KEPT:]

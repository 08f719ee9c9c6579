"""Find any file, act on many: one key's every version, and pages of files by state, time, key prefix and pipeline.

Every read is bounded, whatever the ledger holds. A key's history is one Query on its partition key. A listing reads
an index newest first (`failed` for failed files, `recent`, by the time files entered the ledger or were last retried,
for any other state), a day
and its shards at a time, in chunks that one BatchGetItem answers, and stops at a page (`limit` files) or after
`EXAMINED_PER_PAGE` index entries, whichever comes first; a page token says where the next page starts (the last
entry examined), so that paging never reads everything and shows each file once. `dropq file`, `dropq files` and
`dropq retry --state` are built on it; the dashboard can be.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from dropq.errors import ActionError
from dropq.ledger import FAILED, FAILED_INDEX, HISTORY, RECENT, STATES, Ledger, iso, last_recorded
from dropq.shards import every_shard
from dropq.topology import Topology
from ops.capacity import duration, parse_duration

# A page's files by default, and at most (`dropq retry --state` gathers its files in pages of the largest size).
PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# A page reads at most this many index entries (or ten per file asked for): a filter that few files match ends a
# page early, with a token to read on, instead of reading the whole period.
EXAMINED_PER_PAGE = 1000
# BatchGetItem's keys per call: a filtered page reads its index in chunks of this many, then twice as many, ...
CHUNK = 100
# Index rows are (sort key: an ISO time, pk, sk).
Row = tuple[str, str, str]


def parse_since(text: str, now: datetime | None = None, option: str = "--since") -> datetime:
    """The moment `text` names: a duration back from now ('90s', '30m', '1h', '2d') or an ISO time (UTC unless it says).

    ActionError naming `option` and the text when it is neither, or in the future.
    """
    now = now or datetime.now(UTC)
    try:
        moment = now - timedelta(seconds=parse_duration(text))
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ActionError(f"{option} {text!r} is neither a duration (90s, 30m, 1h, 2d) nor an ISO time (2026-12-01T20:15Z)") from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment > now:
        raise ActionError(f"{option} {text!r} is in the future ({iso(moment)}); nothing was queued or failed since then")
    return moment


def check_state(state: str | None, option: str = "--state") -> str | None:
    """`state` if it is one of the ledger's states (or None); ActionError naming it otherwise."""
    if state is not None and state not in STATES:
        raise ActionError(f"{option} {state!r} is not one of the ledger's states: {', '.join(STATES)}")
    return state


def check_limit(limit: int, option: str = "--limit") -> int:
    """A page size within 1..MAX_PAGE_SIZE; ActionError naming it otherwise."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ActionError(f"{option} {limit} is outside 1..{MAX_PAGE_SIZE}")
    return limit


def _index(state: str | None) -> str:
    return FAILED_INDEX if state == FAILED else RECENT


def encode_page(index: str, row: Row) -> str:
    """An opaque token for the page after `row` of `index` (URL-safe base64 of JSON)."""
    raw = json.dumps([index, *row], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page(token: str, state: str | None, option: str = "--page") -> Row:
    """The row a token of `encode_page` continues after; ActionError naming it when it is not one, or is another listing's."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.strip() + "=" * (-len(token.strip()) % 4)))
        index, *row = decoded
        if not (isinstance(index, str) and len(row) == 3 and all(isinstance(part, str) for part in row)):
            raise ValueError(token)
    except (ValueError, TypeError, binascii.Error):
        raise ActionError(f"{option} {token!r} is not a page token that `dropq files` printed") from None
    if index != _index(state):
        listing = "of failed files (--state failed)" if index == FAILED_INDEX else "by when files entered the ledger (not --state failed)"
        raise ActionError(f"{option} {token!r} continues a listing {listing}; give the --state it was printed with")
    return row[0], row[1], row[2]


def key_of(pk: str) -> str:
    """The object key in a file entry's partition key ("file#s3://bucket/key")."""
    return pk.split("/", 3)[3]


def _matches(entry: dict[str, Any], state: str | None, pipeline: str | None) -> bool:
    return (state is None or entry.get("state") == state) and (pipeline is None or entry.get("pipeline") == pipeline)


@dataclass
class Page:
    """One page of a listing: its files (ledger entries, newest first), the token of the next page (None when the
    period has no more), and how many index entries it read."""

    files: list[dict[str, Any]]
    next_page: str | None
    examined: int
    # The time of the last index entry examined: a short page with a next page has read back to here.
    reached: str | None = None


def find_files(
    ledger: Ledger,
    since: datetime,
    state: str | None = None,
    prefix: str | None = None,
    pipeline: str | None = None,
    limit: int = PAGE_SIZE,
    page: str | None = None,
    now: datetime | None = None,
    examine: int = EXAMINED_PER_PAGE,
) -> Page:
    """A page of the files in `state` (any state when None) since `since`, newest first, whose key starts with `prefix`
    and whose pipeline is `pipeline`; `page` is a token a page before gave. Failed files are found by when they failed,
    the others by when they entered the ledger (their first claim, a backfill) or were last retried, as they are now. A
    page reads at most `examine` index entries (or ten per file asked for)."""
    index = _index(state)
    cursor: Row | None = decode_page(page, state) if page else None
    now = now or datetime.now(UTC)
    # Nothing is older than the ledger keeps (its TTL, longer for failed files): a `since` further back reads no more
    # days than that.
    kept = ledger.ttl_seconds if state not in (None, FAILED) else ledger.failed_ttl_seconds
    since = max(since, now - timedelta(seconds=kept))
    # Filtered, the index is read in BatchGetItem's chunks (and more), not only as many entries as the page misses.
    filtered = (state is not None and state != FAILED) or pipeline is not None or prefix is not None
    budget = max(examine, 10 * limit)
    day: date = min(now, datetime.fromisoformat(cursor[0])).date() if cursor else now.date()
    matched: list[dict[str, Any]] = []
    examined = rounds = 0
    while len(matched) < limit and examined < budget and day >= since.date():
        wanted = limit - len(matched)
        # A filtered read doubles its chunk each round: a round costs a query per shard, however few rows it reads.
        chunk = min(budget - examined, max(wanted, CHUNK << rounds) if filtered else wanted)
        rounds += 1
        shards = every_shard(day.isoformat(), ledger.table.shards)
        rows, more = ledger.index_page(index, shards, chunk, since=iso(since), before=cursor)
        # A prefix is in the index's keys: only the entries it admits are read.
        wanted_keys = [(pk, sk) for _, pk, sk in rows if prefix is None or key_of(pk).startswith(prefix)]
        entries = {(e["pk"], e["sk"]): e for e in ledger.entries(wanted_keys)} if wanted_keys else {}
        whole = True
        for position, row in enumerate(rows):
            examined, cursor = examined + 1, row
            entry = entries.get((row[1], row[2]))
            if entry is not None and _matches(entry, state, pipeline):
                matched.append(entry)
                if len(matched) == limit:
                    whole = position == len(rows) - 1
                    break
        if whole and not more:
            day -= timedelta(days=1)
    ended = day < since.date()
    return Page(
        files=matched,
        next_page=None if ended or cursor is None else encode_page(index, cursor),
        examined=examined,
        reached=cursor[0] if cursor else None,
    )


def every_match(
    ledger: Ledger,
    since: datetime,
    state: str | None = FAILED,
    prefix: str | None = None,
    pipeline: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every file `find_files` lists, page after page, one entry per key (its newest listed version)."""
    now = now or datetime.now(UTC)
    found: dict[str, dict[str, Any]] = {}
    token: str | None = None
    while True:
        page = find_files(ledger, since, state, prefix, pipeline, limit=MAX_PAGE_SIZE, page=token, now=now)
        for entry in page.files:
            found.setdefault(entry["key"], entry)
        if page.next_page is None:
            return list(found.values())
        token = page.next_page


def _ms_between(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return round(elapsed.total_seconds() * 1000) if elapsed >= timedelta(0) else None


def last_attempt(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The last attempt's start, end (None while it runs), worker and duration: the ledger keeps the last one only."""
    started, finished = entry.get("started_at"), entry.get("finished_at")
    if not started or last_recorded(entry):
        # None yet; or it was given back (a retry) and is in the history, the next not started.
        return None
    # An attempt that runs now has no end yet; a `finished_at` before its start is an earlier attempt's.
    if finished and finished < started:
        finished = None
    measured = entry.get("duration_ms") if entry.get("state") == "succeeded" else None
    return {
        "started_at": started,
        "finished_at": finished,
        "worker": entry.get("worker"),
        "duration_ms": measured if measured is not None else _ms_between(started, finished),
    }


def earlier_attempts(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The attempts before the last, oldest first, each with how long it ran (None for one that never ended)."""
    return [
        {**record, "duration_ms": _ms_between(record.get("started_at"), record.get("finished_at"))} for record in entry.get(HISTORY) or []
    ]


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    """A file entry as `--json` prints it (and the text views read it)."""
    return {
        "key": entry["key"],
        "bucket": entry.get("bucket"),
        "etag": entry["sk"],
        "size": entry.get("size"),
        "state": entry.get("state"),
        "pipeline": entry.get("pipeline"),
        "version": entry.get("pipeline_version"),
        "queue": entry.get("queue"),
        "task_id": entry.get("task_id"),
        "queued_at": entry.get("queued_at"),
        "failed_at": entry.get("failed_at"),
        "updated_at": entry.get("updated_at"),
        "attempts": entry.get("attempts", 0),
        "retries": entry.get("retries", 0),
        "last_attempt": last_attempt(entry),
        "earlier_attempts": earlier_attempts(entry),
        "outputs": entry.get("outputs") or [],
        "reason": entry.get("reason"),
        "webhook": entry.get("webhook"),
    }


# A version S3 has and the ledger not: uploaded within its queue's retention, its message waits for a worker (a file's
# claim creates its entry); uploaded longer ago, its message is gone (expired, or never sent) or its entry expired.
WAITING, UNRECORDED = "waiting", "unrecorded"
# What HeadObject answers for an object that is not there, or that the caller may not read: then S3 tells nothing.
NOT_READ = ("404", "NoSuchKey", "NotFound", "403", "AccessDenied", "Forbidden")


def waiting_version(s3: Any, topology: Topology, bucket: str, key: str, known: set[str]) -> dict[str, Any] | None:
    """The inbox object `key` as S3 has it now (one HeadObject), as `summary` gives an entry, when the ledger has no
    entry for it (its ETag not in `known`): `waiting` in the queue it was routed to, or `unrecorded` once it was uploaded
    longer ago than that queue keeps a message."""
    if not topology.is_inbox_key(key, size=None):  # a folder marker is ruled out once its size is known, below
        return None
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in NOT_READ:
            return None
        raise
    etag, size = head["ETag"].strip('"'), int(head["ContentLength"])
    if etag in known or not topology.is_inbox_key(key, size):
        return None
    place = topology.place(key, size)
    uploaded: datetime = head["LastModified"]
    kept = timedelta(seconds=topology.queue(place.queue).retention_seconds)
    return {
        **summary({"key": key, "bucket": bucket, "sk": etag, "size": size, "pipeline": place.pipeline, "queue": place.queue}),
        "state": WAITING if datetime.now(UTC) - uploaded < kept else UNRECORDED,
        "uploaded_at": iso(uploaded),
    }


def file_history(ledger: Ledger, bucket: str, key: str, s3: Any = None, topology: Topology | None = None) -> list[dict[str, Any]]:
    """Every version of `key`, newest first, each marked `superseded` when a newer one exists: the ledger's, most
    recently updated first, after the one S3 holds now if the ledger has not seen it (`waiting` or `unrecorded`, with an
    `s3` client and the `topology`); ActionError when there is none."""
    versions = [summary(entry) for entry in ledger.versions(bucket, key)]
    if s3 is not None and topology is not None:
        waiting = waiting_version(s3, topology, bucket, key, {v["etag"] for v in versions})
        versions = [waiting, *versions] if waiting else versions
    if not versions:
        raise ActionError(f"no file {key!r} in the ledger of s3://{bucket}/ (keys look like 'incoming/photo.jpg')")
    return [{**version, "superseded": position > 0} for position, version in enumerate(versions)]


def _or_dash(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _webhook(delivery: dict[str, Any]) -> str:
    status = f" ({delivery['status']})" if delivery.get("status") else ""
    attempts = f" after {delivery['attempts']} attempt(s)" if delivery.get("attempts") else ""
    at = f" at {delivery['at']}" if delivery.get("at") else ""
    reason = f": {delivery['reason']}" if delivery.get("reason") else ""
    return f"{delivery.get('name') or '-'}: {delivery.get('state', '?')}{status}{attempts}{at}{reason}"


def _ended(record: dict[str, Any]) -> str:
    took = "" if record["duration_ms"] is None else f", took {duration(record['duration_ms'] / 1000)}"
    reason = f": {record['reason']}" if record.get("reason") else ""
    end = f"ended {record['finished_at']}" if record.get("finished_at") else "never ended"
    return f"started {_or_dash(record.get('started_at'))}, {end}, on {_or_dash(record.get('worker'))}{took}: {record['outcome']}{reason}"


def render_history(bucket: str, key: str, versions: list[dict[str, Any]]) -> str:
    """`dropq file KEY` as text: each version, newest first."""
    recorded = sum(v["state"] not in (WAITING, UNRECORDED) for v in versions)
    lines = [f"s3://{bucket}/{key}: {recorded} version{'s' if recorded != 1 else ''} in the ledger"]
    for version in versions:
        mark = "superseded" if version["superseded"] else "newest"
        if version["state"] in (WAITING, UNRECORDED):
            said = (
                f"its message waits for a worker on queue {version['queue']} (pipeline {version['pipeline']}): "
                "`dropq status` shows the queue"
                if version["state"] == WAITING
                else f"longer ago than queue {version['queue']} keeps a message: its message is gone, or its entry expired "
                f"(`dropq backfill s3://{bucket}/{key}` sends it)"
            )
            lines += [
                "",
                f"version {version['etag']} ({mark}, {_or_dash(version['size'])} bytes): {version['state']}, not in the ledger",
                f"  uploaded  {version['uploaded_at']}; {said}",
            ]
            continue
        lines += [
            "",
            f"version {version['etag']} ({mark}, {_or_dash(version['size'])} bytes): {version['state']}",
            f"  pipeline  {_or_dash(version['pipeline'])} (version {_or_dash(version['version'])}) on queue {_or_dash(version['queue'])}",
            f"  since     {_or_dash(version['queued_at'])} (retries {version['retries']}); updated {_or_dash(version['updated_at'])}",
        ]
        for earlier in version["earlier_attempts"]:
            lines.append(f"  attempt {earlier['attempt']} {_ended(earlier)}")
        attempt = version["last_attempt"]
        if attempt:
            took = "-" if attempt["duration_ms"] is None else duration(attempt["duration_ms"] / 1000)
            lines.append(
                f"  attempts  {version['attempts']}; the last: started {attempt['started_at']}, "
                f"ended {_or_dash(attempt['finished_at'])}, on {_or_dash(attempt['worker'])}, took {took}"
            )
        else:
            lines.append(f"  attempts  {version['attempts']}")
        lines += [f"  output    {output}" for output in version["outputs"]] or ["  outputs   -"]
        if version["reason"]:
            lines.append(f"  reason    {version['reason']}")
        lines.append(f"  webhook   {_webhook(version['webhook']) if version['webhook'] else '-'}")
    return "\n".join(lines)


def render_page(files: Iterable[dict[str, Any]], state: str | None) -> str:
    """A page of `dropq files` as a table (summaries, newest first), each failure's reason below it."""
    when = "FAILED AT" if state == FAILED else "QUEUED AT"
    lines = [f"{'STATE':<11}{'PIPELINE':<10}{when:<26}{'ATTEMPTS':>8}  KEY"]
    for f in files:
        at = f["failed_at"] if state == FAILED else f["queued_at"]
        lines.append(f"{f['state'] or '?':<11}{f['pipeline'] or '-':<10}{at or '-':<26}{f['attempts']:>8}  {f['key']}")
        if f["reason"]:
            lines.append(f"{'':<11}reason: {f['reason']}")
    return "\n".join(lines)

"""The ledger's claims and leases against DynamoDB (moto): one attempt at a time, one success per file version."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dropq.counts import counts_for, outcome, total
from dropq.errors import ActionError
from dropq.ledger import FAILED, HISTORY, HISTORY_KEPT, LOST, QUEUED, RETRIED, RUNNING, SUCCEEDED, Ledger, file_pk, hold, ledger_for
from dropq.objects import ObjectRef
from dropq.settings import Settings
from ops.finding import file_history, render_history
from ops.retry import retry_file


def _ref() -> ObjectRef:
    return ObjectRef(bucket="dropq-local", key=f"incoming/claims/{uuid.uuid4().hex}.txt", etag=uuid.uuid4().hex, size=3)


def test_a_live_lease_keeps_a_second_delivery_out_and_a_success_keeps_every_later_one_out(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    ref = _ref()
    first = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=30)
    assert first.acquired and first.owner
    second = ledger.claim(ref, "metadata", "t2", worker="w2", lease_seconds=30)
    assert (second.acquired, second.state) == (False, RUNNING)
    assert 25 < second.lease_remaining <= 30

    assert ledger.mark_succeeded(ref, first.owner, ["processed/x"], 5, "0" * 64)
    later = ledger.claim(ref, "metadata", "t3", worker="w3", lease_seconds=30)
    assert (later.acquired, later.state) == (False, SUCCEEDED)
    entry = ledger.get(ref.bucket, ref.key, ref.etag)
    assert entry is not None and (entry["state"], entry["completions"], entry["worker"]) == (SUCCEEDED, 1, "w1")


def test_a_lease_that_ran_out_passes_the_file_on_and_its_old_holder_records_nothing(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    ref = _ref()
    crashed = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=0.5)
    time.sleep(0.7)
    taker = ledger.claim(ref, "metadata", "t1", worker="w2", lease_seconds=30)
    assert taker.acquired and taker.owner != crashed.owner

    assert crashed.owner and not ledger.renew(ref, crashed.owner, 30)
    assert not ledger.mark_succeeded(ref, crashed.owner, ["processed/x"], 5, "0" * 64)
    assert not ledger.mark_failed(ref, crashed.owner, "late failure")
    assert taker.owner and ledger.mark_succeeded(ref, taker.owner, ["processed/x"], 5, "0" * 64)
    entry = ledger.get(ref.bucket, ref.key, ref.etag)
    assert entry is not None and (entry["state"], entry["completions"], entry["worker"]) == (SUCCEEDED, 1, "w2")
    assert (crashed.attempts, taker.attempts, entry["attempts"]) == (1, 2, 2), "a takeover is an attempt"


def test_holding_renews_the_lease_while_work_runs(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    ref = _ref()
    claim = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=0.6)
    assert claim.owner
    with hold(ledger, ref, claim.owner, 0.6) as lost:
        time.sleep(1.5)  # two and a half leases: only renewals keep it
        other = ledger.claim(ref, "metadata", "t2", worker="w2", lease_seconds=30)
        assert not other.acquired and not lost.is_set()
    assert ledger.mark_succeeded(ref, claim.owner, [], 1, "0" * 64)


def test_a_released_file_is_queued_and_claimable_at_once(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    ref = _ref()
    claim = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=30)
    assert claim.owner and ledger.release(ref, claim.owner)
    assert (ledger.get(ref.bucket, ref.key) or {})["state"] == QUEUED
    retry = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=30)
    assert retry.acquired and retry.owner
    assert ledger.mark_failed(ref, retry.owner, "the file is not a number")
    assert (ledger.get(ref.bucket, ref.key) or {})["state"] == FAILED


def _race(settings: Settings, ref: ObjectRef, claimants: int) -> list[bool]:
    """`claimants` threads, each with its own client, claim `ref` at the same moment."""
    barrier = threading.Barrier(claimants)
    wins: list[bool] = []

    def claim(worker: int) -> None:
        ledger = ledger_for(settings)
        barrier.wait()
        wins.append(ledger.claim(ref, "metadata", "t", f"w{worker}", 30).acquired)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(claimants)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return wins


def test_concurrent_claims_of_one_file_have_one_winner(moto_settings: Settings) -> None:
    for _ in range(5):
        assert sorted(_race(moto_settings, _ref(), 8)) == [False] * 7 + [True]


def test_a_periodic_run_is_claimed_once_per_period_and_taken_over_once_its_claim_runs_out(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    period = f"2026-11-22T08:{uuid.uuid4().int % 60:02d}:00Z"
    schedules = [f"s-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(ledger.claim_period(schedules[0], period, uuid.uuid4().hex, 30).acquired))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True], "eight schedulers at once: one run"

    short = ledger.claim_period(schedules[1], period, "run-1", lease_seconds=0.5)
    assert short.acquired and not ledger.claim_period(schedules[1], period, "run-2", 30).acquired
    time.sleep(0.6)
    assert ledger.claim_period(schedules[1], period, "run-3", 30).acquired, "the first run's worker died: its claim ran out"
    assert not ledger.finish_period(schedules[1], period, "run-1", SUCCEEDED, {}), "only the run holding the claim records it"
    assert ledger.finish_period(schedules[1], period, "run-3", SUCCEEDED, {"files": 2})
    done = ledger.claim_period(schedules[1], period, "run-4", 30)
    assert (done.acquired, done.state) == (False, SUCCEEDED)
    assert ledger.period(schedules[1], period)["summary"] == {"files": 2}


def test_a_files_claim_creates_its_entry_and_a_repeated_delivery_of_an_ended_file_is_never_claimed(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    done, broken = _ref(), _ref()
    # Nothing was written before (S3's files are not): the claim creates the entry, in `recent`
    claim = ledger.claim(done, "metadata", "t1", worker="w1", lease_seconds=30)
    assert claim.owner and claim.attempts == 1
    entry = ledger.get(done.bucket, done.key) or {}
    assert (entry["state"], entry["pipeline"], entry["queue"], entry["task_id"]) == (RUNNING, "metadata", "default", "t1")
    assert done.key in {e["key"] for e in ledger.recent(limit=500)}, "its claim entered it in `recent`"
    assert ledger.mark_succeeded(done, claim.owner, ["processed/x"], 5, "0" * 64)
    # A repeated S3 event of a succeeded file, and of a failed one, is not claimed: neither runs again
    again = ledger.claim(done, "metadata", "t2", worker="w2", lease_seconds=30)
    assert (again.acquired, again.state) == (False, SUCCEEDED)
    first = ledger.claim(broken, "metadata", "t1", worker="w1", lease_seconds=30)
    assert first.owner and ledger.mark_failed(broken, first.owner, "not a number")
    repeated = ledger.claim(broken, "metadata", "t2", worker="w2", lease_seconds=30)
    assert (repeated.acquired, repeated.state) == (False, FAILED)
    assert (ledger.get(broken.bucket, broken.key) or {})["attempts"] == 1
    # Until an operator retries it: queued again, then claimed
    assert ledger.retry(broken, "t3")
    assert ledger.claim(broken, "metadata", "t3", worker="w3", lease_seconds=30).acquired


def test_a_retried_file_is_queued_with_its_attempts_counted_afresh(moto_settings: Settings) -> None:
    # Given a file that failed after using up every attempt
    ledger = ledger_for(moto_settings)
    ref = _ref()
    for _ in range(moto_settings.max_retries):
        claim = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=30)
        assert claim.owner and ledger.release(ref, claim.owner)
    last = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=30)
    assert last.owner and last.attempts == moto_settings.max_retries + 1
    assert not ledger.retry(ref, "t2"), "only a failed file is retried"
    assert ledger.mark_failed(ref, last.owner, "S3 kept timing out")

    assert ledger.retry(ref, "t2")

    entry = ledger.get(ref.bucket, ref.key) or {}
    assert (entry["state"], entry["task_id"], entry.get("reason"), entry["retries"]) == (QUEUED, "t2", None, 1)
    assert ledger.claim(ref, "metadata", "t2", worker="w1", lease_seconds=30).attempts == 1


def test_a_file_is_in_the_failed_index_once_it_failed_and_leaves_it_once_retried(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    done, broken = _ref(), _ref()
    for ref, succeeds in ((done, True), (broken, False)):
        claim = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=30, queue="default")
        assert claim.owner
        if succeeds:
            assert ledger.mark_succeeded(ref, claim.owner, ["processed/x"], 5, "0" * 64)
        else:
            assert ledger.mark_failed(ref, claim.owner, "not a number")

    failed = [e["key"] for e in ledger.failures(datetime.now(UTC) - timedelta(minutes=1))]
    assert broken.key in failed and done.key not in failed
    assert ledger.retry(broken, "t2", queue="default")
    assert broken.key not in [e["key"] for e in ledger.failures(datetime.now(UTC) - timedelta(minutes=1))]
    assert (ledger.get(broken.bucket, broken.key) or {})["state"] == QUEUED


def test_recent_lists_the_newest_queued_files_as_they_are_now_in_one_read_per_shard(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    refs = [_ref() for _ in range(5)]
    for ref in refs:
        assert ledger.mark_queued(ref, "metadata", "default", "t0")
        time.sleep(0.002)  # distinct queued_at, to the millisecond
    claim = ledger.claim(refs[0], "metadata", "t1", worker="w1", lease_seconds=30)
    assert claim.owner and ledger.mark_succeeded(refs[0], claim.owner, ["processed/x"], 5, "0" * 64)

    newest = ledger.recent(limit=3)

    assert [e["key"] for e in newest] == [r.key for r in reversed(refs[2:])], "newest queued first, `limit` of them"
    everything = {e["key"]: e for e in ledger.recent(limit=500)}
    assert everything[refs[0].key]["state"] == SUCCEEDED, "an entry is read as it is now, not as it was queued"


def test_a_renewal_moves_no_index_key_and_leaves_updated_at(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    ref = _ref()
    claim = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=30)
    before = ledger.get(ref.bucket, ref.key) or {}
    time.sleep(0.01)
    assert claim.owner and ledger.renew(ref, claim.owner, 60)
    after = ledger.get(ref.bucket, ref.key) or {}
    indexed = ("recent_shard", "queued_at", "updated_at")
    assert {k: after[k] for k in indexed} == {k: before[k] for k in indexed}
    assert after["lease_until"] > before["lease_until"] + 20


def test_counts_are_added_per_minute_and_read_back_by_period(moto_settings: Settings) -> None:
    counts = counts_for(moto_settings)
    day = f"2031-01-{uuid.uuid4().int % 28 + 1:02d}"
    counts.add(f"{day}T23:59", outcome("images", True, 40))
    counts.add(f"{day}T23:59", outcome("images", False, None))
    counts.add(f"{day}T00:00", outcome("tables", True, 7))

    start = datetime.fromisoformat(f"{day}T00:00:00+00:00")
    read = counts.minutes(start, start + timedelta(days=1, minutes=-1))

    assert read[f"{day}T23:59"] == total([outcome("images", True, 40), outcome("images", False, None)])
    assert read[f"{day}T00:00"] == outcome("tables", True, 7)
    assert set(counts.minutes(start + timedelta(hours=1), start + timedelta(hours=2))) == set(), "only the period asked"


def test_the_newest_across_shards_are_exact_whatever_their_spread_and_read_in_two_rounds_at_most(moto_settings: Settings) -> None:
    # Given a ledger of 4 shards (its own table) with 60 files queued one after another
    import dataclasses

    from infra.local.provision import table_definition

    spec = dataclasses.replace(moto_settings.topology.ledger_table, shards=4)
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    client = moto_settings.client("dynamodb")
    client.create_table(**table_definition(spec, name))
    ledger = Ledger(spec, name, client, ttl_seconds=60)
    refs = [_ref() for _ in range(60)]
    for ref in refs:
        assert ledger.mark_queued(ref, "metadata", "default", "t0")
        time.sleep(0.002)
    queries: list[int] = []
    client.meta.events.register("before-call.dynamodb.Query", lambda **_: queries.append(1))

    for limit in (1, 3, 7, 10, 25, 60):
        queries.clear()
        # When the newest `limit` are asked for
        newest = ledger.recent(limit=limit, days=1)
        # Then they are exactly the newest, newest first, in one query per shard and a few more at most
        assert [e["key"] for e in newest] == [r.key for r in reversed(refs)][:limit], limit
        assert len(queries) <= 2 * spec.shards, (limit, len(queries))


def test_a_late_webhook_of_an_older_version_does_not_make_it_the_newest(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    old = _ref()
    new = ObjectRef(bucket=old.bucket, key=old.key, etag=uuid.uuid4().hex, size=4)
    for ref, pipeline in ((old, "metadata"), (new, "metadata")):
        claim = ledger.claim(ref, pipeline, "t", worker="w", lease_seconds=30)
        assert claim.owner and ledger.mark_succeeded(ref, claim.owner, [], 1, "0" * 64)
        time.sleep(0.01)
    before = ledger.get(old.bucket, old.key, old.etag)

    ledger.mark_webhook(old, {"name": "notify", "state": "delivered", "attempts": 3})

    after = ledger.get(old.bucket, old.key, old.etag)
    assert after["webhook"]["state"] == "delivered" and after["updated_at"] == before["updated_at"]
    assert [v["sk"] for v in ledger.versions(old.bucket, old.key)] == [new.etag, old.etag]


def test_every_attempt_keeps_its_start_end_worker_and_outcome_and_a_file_done_at_once_stores_none(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    sqs = moto_settings.client("sqs")
    ref = ObjectRef(bucket=moto_settings.bucket, key=f"incoming/history/{uuid.uuid4().hex}.txt", etag=uuid.uuid4().hex, size=3)
    # 1: a transient error gives it back; 2: its worker dies (the lease runs out); 3: it fails for good.
    first = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=30)
    assert (
        first.owner and not first.lost and ledger.release(ref, first.owner, ended=[first.ended(RETRIED, "transient error: S3 timed out")])
    )
    dying = ledger.claim(ref, "metadata", "t1", worker="w2", lease_seconds=0.3)
    time.sleep(0.5)
    third = ledger.claim(ref, "metadata", "t1", worker="w3", lease_seconds=30)
    assert third.owner and [r["attempt"] for r in third.lost] == [2] and third.lost[0]["started_at"] == dying.started_at
    assert ledger.mark_failed(ref, third.owner, "not a number", earlier=third.lost)
    # An operator retries it (the failed attempt goes into the history); the next attempt succeeds.
    retry_file(ref.key, moto_settings, ledger, sqs)
    fourth = ledger.claim(ref, "metadata", "t2", worker="w4", lease_seconds=30)
    folder = moto_settings.topology.output_folder("metadata", ref.key)
    assert fourth.owner and ledger.mark_succeeded(ref, fourth.owner, [f"{folder}metadata.json"], 5, "0" * 64, earlier=fourth.lost)
    # Its outputs are stored by their names below its folder, and read back whole
    item_key = {"pk": {"S": file_pk(ref.bucket, ref.key)}, "sk": {"S": ref.etag}}
    stored = ledger.client.get_item(TableName=ledger.table_name, Key=item_key)
    assert stored["Item"]["output_names"] == {"L": [{"S": "metadata.json"}]} and "outputs" not in stored["Item"]
    assert (ledger.get(ref.bucket, ref.key) or {})["outputs"] == [f"{folder}metadata.json"]

    (version,) = file_history(ledger, ref.bucket, ref.key)

    earlier = [(a["attempt"], a["worker"], a["outcome"], a["reason"]) for a in version["earlier_attempts"]]
    assert earlier == [
        (1, "w1", RETRIED, "transient error: S3 timed out"),
        (2, "w2", LOST, "its worker stopped (or stalled) before it ended, and its lease ran out"),
        (3, "w3", FAILED, "not a number"),
    ]
    starts = [a["started_at"] for a in version["earlier_attempts"]] + [version["last_attempt"]["started_at"]]
    assert starts == sorted(starts) and starts[0] == first.started_at and starts[2] == third.started_at
    ends = [a["finished_at"] for a in version["earlier_attempts"]]
    assert ends[0] >= starts[0] and ends[1] is None and ends[2] >= starts[2]
    assert version["earlier_attempts"][1]["duration_ms"] is None and version["earlier_attempts"][0]["duration_ms"] >= 0
    assert (version["attempts"], version["last_attempt"]["worker"], version["state"]) == (1, "w4", SUCCEEDED)
    text = render_history(ref.bucket, ref.key, [version])
    assert f"  attempt 2 started {dying.started_at}, never ended, on w2: lost" in text
    assert "  attempt 3 started " in text and "on w3" in text and ": failed: not a number" in text
    # A file that succeeds at its first attempt stores no history: nothing more to write, nor to pay for.
    once = _ref()
    claim = ledger.claim(once, "metadata", "t1", worker="w1", lease_seconds=30)
    assert claim.owner and ledger.mark_succeeded(once, claim.owner, ["processed/y"], 5, "0" * 64, earlier=claim.lost)
    assert HISTORY not in (ledger.get(once.bucket, once.key, once.etag) or {})


def test_an_operators_retries_keep_the_newest_attempts_only(moto_settings: Settings) -> None:
    ledger, sqs = ledger_for(moto_settings), moto_settings.client("sqs")
    ref = ObjectRef(bucket=moto_settings.bucket, key=f"incoming/history/{uuid.uuid4().hex}.txt", etag=uuid.uuid4().hex, size=3)
    for attempt in range(HISTORY_KEPT + 5):
        claim = ledger.claim(ref, "metadata", f"t{attempt}", worker=f"w{attempt}", lease_seconds=30)
        assert claim.owner and ledger.mark_failed(ref, claim.owner, f"failure {attempt}")
        if attempt < HISTORY_KEPT + 4:
            retry_file(ref.key, moto_settings, ledger, sqs)

    (version,) = file_history(ledger, ref.bucket, ref.key)

    kept = [a["reason"] for a in version["earlier_attempts"]]
    assert kept == [f"failure {attempt}" for attempt in range(4, HISTORY_KEPT + 4)]
    assert version["reason"] == f"failure {HISTORY_KEPT + 4}"


def test_an_attempt_given_back_shows_once_and_a_dead_workers_attempt_is_kept_by_the_claim_that_takes_over(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    ref = _ref()
    first = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=30)
    assert first.owner and ledger.release(ref, first.owner, ended=[first.ended(RETRIED, "transient error: S3 timed out")])
    # Given back and not claimed since: the attempt is in the history, not shown again as the last one
    (waiting,) = file_history(ledger, ref.bucket, ref.key)
    assert [a["attempt"] for a in waiting["earlier_attempts"]] == [1] and waiting["last_attempt"] is None
    # A worker that died with the file: once its lease ran out, the next delivery's claim takes the file over and
    # keeps the dead attempt as lost, with its own outcome
    dying = ledger.claim(ref, "metadata", "t1", worker="w2", lease_seconds=0.3)
    time.sleep(0.5)
    after = ledger.claim(ref, "metadata", "t1", worker="w3", lease_seconds=30)
    assert after.owner and [a["outcome"] for a in after.lost] == [LOST]
    assert ledger.mark_succeeded(ref, after.owner, ["processed/x"], 5, "0" * 64, earlier=after.lost)
    (done,) = file_history(ledger, ref.bucket, ref.key)
    assert [(a["attempt"], a["outcome"], a["started_at"]) for a in done["earlier_attempts"]] == [
        (1, RETRIED, first.started_at),
        (2, LOST, dying.started_at),
    ]
    assert (done["last_attempt"]["worker"], done["attempts"]) == ("w3", 3)


def test_an_entry_expires_a_ttl_after_the_write_that_gave_it_its_state_longer_once_failed(moto_settings: Settings) -> None:
    ledger, topology = ledger_for(moto_settings), moto_settings.topology
    ttl, failed_ttl = topology.ledger_ttl_seconds, topology.failed_ttl_seconds
    assert failed_ttl > ttl

    def expires(ref: ObjectRef) -> float:
        entry = ledger.get(ref.bucket, ref.key, ref.etag)
        assert entry is not None
        return entry[topology.ledger_table.ttl_attribute] - time.time()

    done, broken = _ref(), _ref()
    for ref in (done, broken):
        assert ledger.mark_queued(ref, "metadata", "default", "t1")
        assert abs(expires(ref) - ttl) < 60
    ok, bad = ledger.claim(done, "metadata", "t1", "w1", 30), ledger.claim(broken, "metadata", "t1", "w1", 30)
    assert ok.owner and bad.owner
    assert ledger.mark_succeeded(done, ok.owner, ["processed/x"], 5, "0" * 64)
    assert ledger.mark_failed(broken, bad.owner, "corrupt")
    assert abs(expires(done) - ttl) < 60, "a succeeded entry is kept as long as a message could bring its file back"
    assert abs(expires(broken) - failed_ttl) < 60, "a failed one as long as operators retry"

    # A retry gives it the state (and expiry) of a queued file again
    assert ledger.retry(broken, "t2")
    assert abs(expires(broken) - ttl) < 60


def test_a_file_waiting_for_its_first_claim_is_found_from_s3_with_its_queue(moto_settings: Settings) -> None:
    ledger, s3, topology = ledger_for(moto_settings), moto_settings.client("s3"), moto_settings.topology
    key = f"incoming/waiting/{uuid.uuid4().hex}.csv"
    first = s3.put_object(Bucket=moto_settings.bucket, Key=key, Body=b"a,b\n1,2\n")
    # Not in the ledger yet (its claim creates its entry): S3 has it, and where its message waits is said
    (waiting,) = file_history(ledger, moto_settings.bucket, key, s3, topology)
    etag = first["ETag"].strip('"')
    assert (waiting["state"], waiting["etag"], waiting["pipeline"], waiting["queue"]) == ("waiting", etag, "tables", "default")
    text = render_history(moto_settings.bucket, key, [waiting])
    assert "0 versions in the ledger" in text and "waiting, not in the ledger" in text and "waits for a worker on queue default" in text
    # Claimed: the ledger's version, and nothing waiting
    ref = ObjectRef(bucket=moto_settings.bucket, key=key, etag=etag, size=8)
    assert ledger.claim(ref, "tables", "t1", worker="w1", lease_seconds=30).acquired
    assert [v["state"] for v in file_history(ledger, moto_settings.bucket, key, s3, topology)] == [RUNNING]
    # Uploaded again: the new version waits, newest; the claimed one is superseded
    second = s3.put_object(Bucket=moto_settings.bucket, Key=key, Body=b"a,b\n3,4\n5,6\n")
    versions = file_history(ledger, moto_settings.bucket, key, s3, topology)
    assert [(v["state"], v["etag"], v["superseded"]) for v in versions] == [
        ("waiting", second["ETag"].strip('"'), False),
        (RUNNING, ref.etag, True),
    ]
    # A key S3 does not have, and the ledger neither, is unknown
    with pytest.raises(ActionError, match="no file"):
        file_history(ledger, moto_settings.bucket, f"incoming/waiting/{uuid.uuid4().hex}.csv", s3, topology)

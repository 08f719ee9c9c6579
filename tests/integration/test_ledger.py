"""The ledger's claims and leases against DynamoDB (moto): one attempt at a time, one success per file version."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from dropq.ledger import FAILED, QUEUED, RUNNING, SUCCEEDED, hold, ledger_for
from dropq.objects import ObjectRef
from dropq.settings import Settings


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


def test_the_sweep_requeues_a_file_stuck_before_the_cutoff_and_never_a_fresh_or_live_one(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    stuck, fresh, live = _ref(), _ref(), _ref()
    for ref in (stuck, fresh, live):
        assert ledger.mark_queued(ref, "metadata", "default", "t0")
    assert ledger.claim(live, "metadata", "t1", worker="w", lease_seconds=60).acquired
    assert ledger.requeue(stuck, "t2", "2999-01-01T00:00:00.000Z") and ledger.get(stuck.bucket, stuck.key)["sweeps"] == 1
    assert not ledger.requeue(fresh, "t3", "2000-01-01T00:00:00.000Z"), "updated after the cutoff: not stuck"
    assert not ledger.requeue(live, "t4", "2999-01-01T00:00:00.000Z"), "a running file whose lease is live is left alone"
    assert ledger.fail_stuck(stuck, "2999-01-01T00:00:00.000Z", "stuck: gave up")
    assert (ledger.get(stuck.bucket, stuck.key)["state"], ledger.get(stuck.bucket, stuck.key)["reason"]) == (FAILED, "stuck: gave up")


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
    assert (entry["state"], entry["task_id"], entry["reason"], entry["retries"]) == (QUEUED, "t2", None, 1)
    assert ledger.claim(ref, "metadata", "t2", worker="w1", lease_seconds=30).attempts == 1


def test_since_lists_the_entries_updated_from_a_moment_with_only_the_fields_asked(moto_settings: Settings) -> None:
    ledger = ledger_for(moto_settings)
    before = datetime.now(UTC) - timedelta(seconds=1)
    ref = _ref()
    claim = ledger.claim(ref, "metadata", "t1", worker="w1", lease_seconds=30)
    assert claim.owner and ledger.mark_succeeded(ref, claim.owner, ["processed/x"], 5, "0" * 64)

    assert [e["state"] for e in ledger.since(before, fields=("key", "state")) if e["key"] == ref.key] == [SUCCEEDED]
    assert all(set(e) <= {"state", "finished_at", "updated_at"} for e in ledger.since(before))
    assert ledger.since(datetime.now(UTC) + timedelta(seconds=5)) == []

"""The `dropq.process` task in Celery's eager mode against moto: retries with backoff, and giving up."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from dropq.counts import counts_for, total
from dropq.ledger import ledger_for
from dropq.objects import ObjectRef
from dropq.settings import Settings
from tasks import process as process_module
from tasks import tally
from tasks.process import process


class FlakyS3:
    """A real S3 client whose first `failures` GetObject calls fail as if the network dropped."""

    def __init__(self, client: Any, failures: int) -> None:
        self.client = client
        self.failures = failures
        self.calls = 0

    def get_object(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        return self.client.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture(autouse=True)
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What a test counted is added before its monkeypatches are undone (the tally's thread outlives the test)."""
    yield
    tally.tally().flush()


def _drop(settings: Settings, failures: int, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], FlakyS3]:
    s3 = settings.client("s3")
    key = f"incoming/flaky-{uuid.uuid4().hex[:8]}.txt"
    etag = s3.put_object(Bucket=settings.bucket, Key=key, Body=b"some text\n")["ETag"].strip('"')
    flaky = FlakyS3(s3, failures)
    monkeypatch.setattr(process_module, "clients", lambda: (flaky, ledger_for(settings), ledger_for(settings)))
    monkeypatch.setattr(tally, "_process_counts", lambda: counts_for(settings))  # outcome counts go there too
    # Point the app's result backend at this moto server too (Celery builds it once per thread).
    monkeypatch.setitem(process.app.conf, "dynamodb_endpoint_url", settings.endpoint_url)
    monkeypatch.delattr(process.app._local, "backend", raising=False)
    kwargs = {"bucket": settings.bucket, "key": key, "etag": etag, "size": 10, "pipeline": "metadata"}
    return kwargs, flaky


def test_a_transient_error_is_retried_and_the_file_succeeds(moto_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs, flaky = _drop(moto_settings, failures=2, monkeypatch=monkeypatch)

    result = process.apply(kwargs=kwargs)

    assert result.get()["state"] == "succeeded"
    entry = ledger_for(moto_settings).get(moto_settings.bucket, kwargs["key"])
    assert entry is not None and (entry["state"], entry["attempts"]) == ("succeeded", 3)
    assert flaky.calls == 3
    # Each attempt given back is in the file's history, with its start, end and why.
    earlier = entry["history"]
    assert [(a["attempt"], a["outcome"]) for a in earlier] == [(1, "retried"), (2, "retried")]
    assert all(a["reason"].startswith("transient error: downloading s3://") and a["started_at"] <= a["finished_at"] for a in earlier)
    assert earlier[1]["finished_at"] <= entry["started_at"]
    # and its outcome is counted for the dashboard and the report, by minute (added at the process's next flush)
    before = total(counts_for(moto_settings).minutes(datetime.now(UTC) - timedelta(minutes=1), datetime.now(UTC)).values())
    tally.tally().flush()
    after = total(counts_for(moto_settings).minutes(datetime.now(UTC) - timedelta(minutes=1), datetime.now(UTC)).values())
    assert after["succeeded:metadata"] - before["succeeded:metadata"] == 1


def test_retries_end_with_a_failure_and_its_reason(moto_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs, flaky = _drop(moto_settings, failures=100, monkeypatch=monkeypatch)

    result = process.apply(kwargs=kwargs)

    assert result.failed()
    entry = ledger_for(moto_settings).get(moto_settings.bucket, kwargs["key"])
    assert entry is not None and entry["state"] == "failed"
    attempts = process_module.settings.max_retries + 1
    assert entry["reason"].startswith(f"gave up after {attempts} attempts: downloading s3://")
    assert "Could not connect to the endpoint URL" in entry["reason"]
    assert flaky.calls == attempts


def test_a_file_whose_worker_keeps_dying_fails_with_that_reason(moto_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs, flaky = _drop(moto_settings, failures=0, monkeypatch=monkeypatch)
    ledger = ledger_for(moto_settings)
    ref = ObjectRef.from_dict(kwargs)
    attempts = process_module.settings.max_retries + 1
    for _ in range(attempts):  # each attempt's worker died: its lease ran out, nothing was recorded
        assert ledger.claim(ref, "metadata", "t", worker="w", lease_seconds=0.01).acquired
        time.sleep(0.02)

    assert process.apply(kwargs=kwargs).get()["state"] == "failed"
    entry = ledger.get(ref.bucket, ref.key)
    assert entry is not None and entry["state"] == "failed"
    assert entry["reason"].startswith(f"started {attempts} times without finishing")
    assert flaky.calls == 0, "not started again"
    # A lost attempt is recorded by the next attempt's outcome write: the hand-made claims here wrote none, so the last one is kept.
    assert [(a["attempt"], a["outcome"], a["worker"], a["finished_at"]) for a in entry["history"]] == [(attempts, "lost", "w", None)]

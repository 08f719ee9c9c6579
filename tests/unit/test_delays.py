"""Countdowns wait in SQS: a delay of whole seconds, at most one hop, read from Celery's ETA header."""

from __future__ import annotations

import base64
import json

import pytest

from dropq.errors import ConfigError
from dropq.settings import load_settings
from tasks.broker.delays import delay_for, seconds_until, task_headers


def test_seconds_until_reads_celerys_iso_eta_in_utc() -> None:
    assert seconds_until("2026-11-22T08:00:10+00:00", now=1_795_334_400.0) == 10.0
    assert seconds_until("2026-11-22T08:00:10", now=1_795_334_400.0) == 10.0, "a naive ETA is UTC"
    assert seconds_until(None, now=0) is None
    assert seconds_until("next tuesday", now=0) is None


def test_a_delay_is_whole_seconds_rounded_down_and_at_most_one_hop() -> None:
    assert delay_for(None, 900) == 0
    assert delay_for(0.9, 900) == 0, "under a second: Celery holds it"
    assert delay_for(-5, 900) == 0, "overdue: at once"
    assert delay_for(14.7, 900) == 14, "never later than its ETA"
    assert delay_for(3600, 900) == 900, "an hour: the first of four hops"
    assert delay_for(7, 2) == 2


def test_task_headers_come_from_kombus_base64_json_body() -> None:
    body = base64.b64encode(json.dumps({"headers": {"id": "t1", "eta": "2026-11-22T08:00:10+00:00"}}).encode()).decode()
    assert task_headers(body) == {"id": "t1", "eta": "2026-11-22T08:00:10+00:00"}
    assert task_headers("not base64 at all!") == {}
    assert task_headers(base64.b64encode(b"[1, 2]").decode()) == {}


def test_the_hop_is_a_setting_within_what_sqs_allows() -> None:
    assert load_settings({}).delay_hop_seconds == 900
    assert load_settings({"DROPQ_DELAY_HOP_SECONDS": "2"}).delay_hop_seconds == 2
    with pytest.raises(ConfigError, match="DROPQ_DELAY_HOP_SECONDS=901 is above SQS's longest delay, 900"):
        load_settings({"DROPQ_DELAY_HOP_SECONDS": "901"})
    with pytest.raises(ConfigError, match="DROPQ_DELAY_HOP_SECONDS=0 is below its minimum 1"):
        load_settings({"DROPQ_DELAY_HOP_SECONDS": "0"})

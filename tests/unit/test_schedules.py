"""Schedules: declared once in the topology, fired locally at the times EventBridge Scheduler would fire them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dropq.errors import ProducerError
from dropq.schedules import parse_firing
from dropq.topology import TOPOLOGY, Schedule, TopologyError
from infra.local.scheduler import LocalScheduler, latest_time


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_topology_declares_a_daily_report() -> None:
    assert {s.name: s.task for s in TOPOLOGY.schedules} == {"daily-report": "dropq.report"}


def test_expressions_are_eventbridge_rates_or_crons_with_their_rules() -> None:
    assert Schedule("s", "rate(1 minute)", "t").rate_seconds == 60
    assert Schedule("s", "rate(2 hours)", "t").rate_seconds == 7200
    assert Schedule("s", "cron(5 0 * * ? *)", "t").cron == "5 0 * * *"
    # EventBridge numbers days of the week 1-7 from Sunday; cron 0-6.
    assert Schedule("s", "cron(0 9 ? * 2-6 *)", "t").cron == "0 9 * * 1-5"
    assert Schedule("s", "cron(0 9 ? * MON-FRI *)", "t").cron == "0 9 * * MON-FRI"
    for bad, why in (
        ("rate(1 minutes)", "rate"),
        ("rate(0 hours)", "rate"),
        ("every day", "rate"),
        ("cron(0 9 * * *)", "six fields"),
        ("cron(0 9 * * ? 2027)", "year"),
    ):
        with pytest.raises(TopologyError, match=why):
            Schedule("s", bad, "t")


def test_rates_fall_on_multiples_of_their_period_and_crons_on_their_times() -> None:
    every_ten = Schedule("s", "rate(10 minutes)", "t")
    assert latest_time(every_ten, at("2026-11-22T08:19:59")) == at("2026-11-22T08:10:00")
    assert latest_time(every_ten, at("2026-11-22T08:20:00")) == at("2026-11-22T08:20:00")
    daily = Schedule("s", "cron(5 0 * * ? *)", "t")
    assert latest_time(daily, at("2026-11-22T00:04:59")) == at("2026-11-21T00:05:00")
    assert latest_time(daily, at("2026-11-22T00:05:00")) == at("2026-11-22T00:05:00")


def test_the_local_scheduler_fires_each_time_once_and_not_the_one_before_it_started() -> None:
    now = [at("2026-11-22T08:09:30")]
    fired: list[tuple[str, datetime]] = []
    scheduler = LocalScheduler([Schedule("s", "rate(1 minute)", "t")], lambda s, t: fired.append((s.name, t)), clock=lambda: now[0])
    assert scheduler.tick() == [] and fired == []
    now[0] += timedelta(seconds=29)
    assert scheduler.tick() == []
    now[0] += timedelta(seconds=1)
    assert scheduler.tick() == [("s", at("2026-11-22T08:10:00"))]
    assert scheduler.tick() == []
    now[0] += timedelta(minutes=3)  # a stall: the latest time is fired, not each one missed
    assert scheduler.tick() == [("s", at("2026-11-22T08:13:00"))]
    assert fired == [("s", at("2026-11-22T08:10:00")), ("s", at("2026-11-22T08:13:00"))]


def test_a_firing_names_a_declared_schedule_and_a_time_with_a_zone() -> None:
    firing = parse_firing({"dropq_schedule": "daily-report", "scheduled_time": "2026-11-22T08:10:00.250+01:00"}, TOPOLOGY)
    assert (firing.schedule, firing.scheduled_time) == ("daily-report", "2026-11-22T07:10:00Z")
    with pytest.raises(ProducerError, match="unknown schedule 'nope'; the topology declares daily-report"):
        parse_firing({"dropq_schedule": "nope", "scheduled_time": "2026-11-22T08:10:00Z"}, TOPOLOGY)
    with pytest.raises(ProducerError, match="has no time zone"):
        parse_firing({"dropq_schedule": "daily-report", "scheduled_time": "2026-11-22T08:10:00"}, TOPOLOGY)
    with pytest.raises(ProducerError, match="is not an ISO 8601 time"):
        parse_firing({"dropq_schedule": "daily-report", "scheduled_time": "yesterday"}, TOPOLOGY)

"""The local cloud's scheduler: the topology's schedules, fired as EventBridge Scheduler fires them in AWS.

At each scheduled time it invokes the producer with the schedule payload (dropq/schedules.py),
through the same local Lambda runtime that S3's notifications go through. Like EventBridge, it does not
catch up on times that passed while it was not running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from croniter import croniter

from dropq.ticker import Ticker
from dropq.topology import Schedule

logger = logging.getLogger("dropq.scheduler")

Fire = Callable[[Schedule, datetime], None]


def latest_time(schedule: Schedule, now: datetime) -> datetime:
    """The schedule's latest scheduled time at or before `now` (rates count from the Unix epoch, in UTC)."""
    now = now.astimezone(UTC)
    if schedule.rate_seconds is not None:
        epoch = int(now.timestamp())
        return datetime.fromtimestamp(epoch - epoch % schedule.rate_seconds, UTC)
    assert schedule.cron is not None
    # croniter's get_prev is strictly before its start: start a second later so that `now` itself counts.
    return croniter(schedule.cron, now.replace(microsecond=0) + timedelta(seconds=1)).get_prev(datetime).astimezone(UTC)


class LocalScheduler(Ticker):
    """Fires each schedule once per scheduled time, from a background thread, until stopped."""

    def __init__(
        self, schedules: Iterable[Schedule], fire: Fire, clock: Callable[[], datetime] = lambda: datetime.now(UTC), interval: float = 1.0
    ) -> None:
        super().__init__("dropq-scheduler", interval)
        self.schedules = tuple(schedules)
        self.fire = fire
        self.clock = clock
        now = clock()
        # Times already passed when the scheduler starts are not fired (EventBridge does not backfill either).
        self.last = {s.name: latest_time(s, now) for s in self.schedules}

    def tick(self) -> list[tuple[str, datetime]]:
        """Fire the schedules whose next time has come; return what was fired."""
        now = self.clock()
        fired = []
        for schedule in self.schedules:
            due = latest_time(schedule, now)
            if due > self.last[schedule.name]:
                self.fire(schedule, due)
                self.last[schedule.name] = due
                fired.append((schedule.name, due))
        return fired

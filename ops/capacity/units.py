"""Seconds and counts in the words a reader scans ('2 h 26 min', '1,167'), and durations read back ('30m')."""

from __future__ import annotations

import re


def duration(seconds: float | None) -> str:
    """Seconds in words a reader scans: '45 s', '16 min 40 s', '2 h 24 min', '4 d 0 h'."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{seconds:.0f} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def number(value: float) -> str:
    """A count or rate as a reader scans it: 10,000,000, 1,167, 47.2, 0.0333."""
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.3g}" if value >= 1 else f"{value:.3g}"


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*$")
DURATION_UNITS = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds from '90', '90s', '30m', '2h' or '1d'; ValueError naming the text otherwise."""
    match = DURATION.match(text)
    if not match:
        raise ValueError(f"duration {text!r} is not like '90s', '30m', '2h' or '1d'")
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]

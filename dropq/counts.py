"""Files finished per minute, counted in the ledger table: what the dashboard's throughput and the daily report read.

Each worker process adds what it recorded every few seconds (tasks/tally.py), with one UpdateItem ADD per minute
that has new counts, so these writes grow with the number of worker processes, not with the files, and reading a
period costs one Query per day it spans, whatever the traffic. pk = "counts#<YYYY-MM-DD>", sk = "<HH:MM>" (UTC).

An item's attributes: `succeeded` and `failed`, the same per pipeline (`succeeded:images`), and a histogram of
the durations of successes per pipeline (`ms:images:<bucket>`). The counts are of outcomes recorded: a file that
failed, was retried and succeeded counts once in each.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

COUNTS_PK = "counts#"
SUCCEEDED, FAILED = "succeeded", "failed"
# Durations fall into buckets 2**(1/8) apart: a percentile read from the histogram is at most 9% above the true one.
BUCKETS_PER_DOUBLING = 8
DURATION_PREFIX = "ms:"


def minute_of(moment: datetime) -> str:
    """The minute a moment falls in, as counts are kept: "YYYY-MM-DDTHH:MM" (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def duration_bucket(duration_ms: int) -> int:
    """The histogram bucket of a duration: the smallest b with duration <= 2**(b/8) ms."""
    return max(0, math.ceil(math.log2(max(1, duration_ms)) * BUCKETS_PER_DOUBLING))


def bucket_ms(bucket: int) -> int:
    """The longest duration a bucket holds, in whole milliseconds."""
    return math.ceil(2 ** (bucket / BUCKETS_PER_DOUBLING))


def outcome(pipeline: str, succeeded: bool, duration_ms: int | None) -> Counter[str]:
    """The counts one recorded outcome adds."""
    state = SUCCEEDED if succeeded else FAILED
    counts = Counter({state: 1, f"{state}:{pipeline}": 1})
    if succeeded and duration_ms is not None:
        counts[f"{DURATION_PREFIX}{pipeline}:{duration_bucket(duration_ms)}"] += 1
    return counts


def percentile(histogram: Mapping[int, int], fraction: float) -> int | None:
    """The `fraction` percentile of a histogram of durations (bucket -> count), as its bucket's upper bound in ms."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = math.ceil(fraction * total), 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_ms(bucket)
    return bucket_ms(max(histogram))


def durations(counts: Mapping[str, int], pipeline: str | None = None) -> Counter[int]:
    """The histogram (bucket -> count) of one pipeline's durations in a set of counts, or of every pipeline's."""
    histogram: Counter[int] = Counter()
    for name, count in counts.items():
        if name.startswith(DURATION_PREFIX):
            owner, _, bucket = name[len(DURATION_PREFIX) :].rpartition(":")
            if pipeline is None or owner == pipeline:
                histogram[int(bucket)] += count
    return histogram


def total(minutes: Iterable[Mapping[str, int]]) -> Counter[str]:
    """Every count of several minutes, summed."""
    summed: Counter[str] = Counter()
    for counts in minutes:
        summed.update(counts)
    return summed


class Counts:
    """Reads and adds the per-minute counts of one deployment's ledger table."""

    def __init__(self, table_name: str, client: Any, ttl_attribute: str, ttl_seconds: int) -> None:
        self.table_name = table_name
        self.client = client
        self.ttl_attribute = ttl_attribute
        self.ttl_seconds = ttl_seconds

    def add(self, minute: str, counts: Mapping[str, int]) -> None:
        """Add `counts` to one minute's ("YYYY-MM-DDTHH:MM") in one UpdateItem."""
        day, _, hour_minute = minute.partition("T")
        names = {f"#c{i}": name for i, name in enumerate(counts)}
        values = {f":c{i}": {"N": str(int(count))} for i, count in enumerate(counts.values())}
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"{COUNTS_PK}{day}"}, "sk": {"S": hour_minute}},
            UpdateExpression="SET #ttl = :ttl ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counts))),
            ExpressionAttributeNames={**names, "#ttl": self.ttl_attribute},
            ExpressionAttributeValues={**values, ":ttl": {"N": str(int(datetime.now(UTC).timestamp()) + self.ttl_seconds)}},
        )

    def minutes(self, start: datetime, end: datetime) -> dict[str, Counter[str]]:
        """The counts of each minute from `start` to `end` (both included) that has any: one Query per day spanned."""
        first, last = minute_of(start), minute_of(end)
        found: dict[str, Counter[str]] = {}
        day = start.astimezone(UTC).date()
        while day <= end.astimezone(UTC).date():
            low = first[11:] if day.isoformat() == first[:10] else "00:00"
            high = last[11:] if day.isoformat() == last[:10] else "23:59"
            request: dict[str, Any] = {
                "TableName": self.table_name,
                "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
                "ExpressionAttributeValues": {":pk": {"S": f"{COUNTS_PK}{day.isoformat()}"}, ":low": {"S": low}, ":high": {"S": high}},
            }
            while True:
                response = self.client.query(**request)
                for item in response.get("Items", []):
                    counts = Counter({k: int(v["N"]) for k, v in item.items() if "N" in v and k != self.ttl_attribute})
                    found[f"{day.isoformat()}T{item['sk']['S']}"] = counts
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            day += timedelta(days=1)
        return found


def counts_for(settings: Any, client: Any = None) -> Counts:
    """The per-minute counts of a deployment described by `settings` (a `dropq.settings.Settings`)."""
    topology = settings.topology
    return Counts(
        settings.physical_name(topology.ledger_table.name),
        client or settings.client("dynamodb"),
        topology.ledger_table.ttl_attribute,
        topology.ledger_ttl_seconds,
    )

"""Outcome counts: what one outcome adds, and percentiles read back from the duration histogram."""

from __future__ import annotations

import random
from collections import Counter

from dropq.counts import bucket_ms, duration_bucket, durations, outcome, percentile, total
from dropq.shards import every_shard, shard_of, sharded


def test_an_outcome_counts_its_state_its_pipeline_and_a_success_its_duration() -> None:
    assert outcome("images", True, 120) == Counter({"succeeded": 1, "succeeded:images": 1, f"ms:images:{duration_bucket(120)}": 1})
    assert outcome("tables", False, 900) == Counter({"failed": 1, "failed:tables": 1}), "failures are counted, not timed"


def test_a_duration_lies_in_its_bucket_and_a_bucket_spans_less_than_ten_percent() -> None:
    for ms in (1, 2, 3, 17, 100, 999, 1000, 60_000, 3_600_000):
        bucket = duration_bucket(ms)
        assert 2 ** ((bucket - 1) / 8) < ms <= 2 ** (bucket / 8) if bucket else ms == 1
        assert ms <= bucket_ms(bucket) <= ms * 1.091 + 1


def test_percentiles_from_the_histogram_are_within_nine_percent_of_the_exact_ones() -> None:
    chaos = random.Random(7)
    values = [int(chaos.lognormvariate(5, 1)) + 1 for _ in range(5000)]
    counts = total(outcome("images", True, v) for v in values)
    histogram = durations(counts, "images")
    assert sum(histogram.values()) == 5000 and durations(counts, "tables") == Counter()
    ordered = sorted(values)
    for fraction in (0.5, 0.95):
        exact = ordered[int(fraction * len(ordered)) - 1]
        read = percentile(histogram, fraction)
        assert read is not None and exact <= read <= exact * 1.091 + 1, (fraction, exact, read)
    assert percentile(histogram, 1.0) >= max(values) and percentile(Counter(), 0.5) is None


def test_a_key_keeps_its_shard_and_keys_spread_evenly_over_the_shards() -> None:
    assert sharded("2026-12-01", "file#s3://b/k.txt", 64) == sharded("2026-12-01", "file#s3://b/k.txt", 64)
    assert every_shard("default", 3) == ["default#00", "default#01", "default#02"]
    spread = Counter(shard_of(f"file#s3://b/incoming/{i}.jpg", 64) for i in range(64_000))
    assert len(spread) == 64 and max(spread.values()) < 1.1 * 1000, "within 10% of an even share"

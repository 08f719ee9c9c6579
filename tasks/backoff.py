"""The one retry schedule of dropq's tasks: Celery's exponential backoff with full jitter, capped."""

from __future__ import annotations

from celery.utils.time import get_exponential_backoff_interval

RETRY_BACKOFF_FACTOR = 2
RETRY_BACKOFF_MAX = 300


def backoff(retries: int) -> int:
    """Seconds before the retry that follows `retries` earlier ones (0, 1, ...): up to 2, 4, 8 ... 300, at random."""
    return get_exponential_backoff_interval(RETRY_BACKOFF_FACTOR, retries, RETRY_BACKOFF_MAX, full_jitter=True)

"""When the benchmarks' files were done: each one's `finished_at` from the ledger, waited for."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from dropq.ledger import FAILED, SUCCEEDED, Ledger


def finished_at(ledger: Ledger, bucket: str, keys: Iterable[str], timeout: float, what: str) -> dict[str, float]:
    """Wait until every key succeeded; its worker's `finished_at` (epoch seconds) by key. A failed file raises."""
    pending, finished = set(keys), {}
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {len(pending)} files were not done within {timeout:.0f}s")
        for key in list(pending):
            entry = ledger.get(bucket, key) or {}
            if entry.get("state") == FAILED:
                raise RuntimeError(f"{what}: {key} failed: {entry.get('reason')}")
            if entry.get("state") == SUCCEEDED:
                finished[key] = datetime.fromisoformat(entry["finished_at"].replace("Z", "+00:00")).timestamp()
                pending.discard(key)
        time.sleep(0.2)
    return finished

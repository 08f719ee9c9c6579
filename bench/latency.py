"""End-to-end latency of the real flow with warm workers: S3 put -> notification -> producer -> SQS -> worker -> output.

Files are put one by one at a steady pace on a running local cloud (one worker, warm); a file's latency runs from
just before its PutObject to the moment its worker recorded it done in the ledger, after its outputs were written.
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import dataclass
from typing import Any

from PIL import Image

from bench.outcomes import finished_at
from dropq.ledger import ledger_for
from dropq.settings import Settings
from infra.local.cloud import LocalCloud

SETTLE_SECONDS = 120


@dataclass(frozen=True)
class Latency:
    """Seconds from put to done, per file."""

    seconds: list[float]

    def percentile(self, p: float) -> float:
        ranked = sorted(self.seconds)
        return ranked[min(len(ranked) - 1, max(0, round(p / 100 * len(ranked)) - 1))]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds)


def small_jpeg() -> bytes:
    """A small photo-like JPEG: the images pipeline makes its thumbnails in a few milliseconds."""
    image = Image.radial_gradient("L").convert("RGB").resize((96, 64))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def measure(cloud: LocalCloud, files: int, interval: float, warmup: int = 5) -> Latency:
    """Put `files` JPEGs `interval` seconds apart (after `warmup` unmeasured ones); their latencies."""
    settings: Settings = cloud.settings
    s3: Any = settings.client("s3")
    ledger = ledger_for(settings)
    bucket, inbox = settings.topology.bucket, settings.topology.inbox_prefix
    body = small_jpeg()
    put_at: dict[str, float] = {}
    for i in range(warmup + files):
        key = f"{inbox}latency/{'warmup' if i < warmup else 'file'}-{i:05d}.jpg"
        started = time.time()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        if i >= warmup:
            put_at[key] = started
        time.sleep(max(0.0, interval - (time.time() - started)))
    done = finished_at(ledger, bucket, put_at, SETTLE_SECONDS, "latency")
    return Latency([done[key] - put_at[key] for key in put_at])

"""Pipeline efficiency: the built-in images and tables pipelines through dropq, against a plain Python loop.

Both sides run the same pipeline functions on the same generated files with the same number of processes:
dropq as one worker of `processes` (the whole flow: S3 put, notification, producer, SQS, download, upload,
ledger), the loop as a `multiprocessing` pool reading local files and writing local outputs. The ratio of
their times is what dropq's machinery costs on top of the work itself.
"""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from bench.outcomes import finished_at
from bench.throughput import cpu_ms
from dropq.ledger import ledger_for
from dropq.objects import ObjectRef
from infra.local.cloud import LocalCloud

SETTLE_SECONDS = 600


@dataclass(frozen=True)
class Efficiency:
    """Seconds and CPU for the same files through dropq and through the plain loop."""

    pipeline: str
    files: int
    dropq_seconds: float
    loop_seconds: float
    dropq_cpu_ms: float  # the worker's processes
    loop_cpu_ms: float  # the loop's processes
    server_cpu_ms: float  # the local AWS (moto) while dropq ran

    @property
    def ratio(self) -> float:
        return self.loop_seconds / self.dropq_seconds

    @property
    def cpu_ratio(self) -> float:
        return self.loop_cpu_ms / self.dropq_cpu_ms


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _cpu_ms(pids: list[int]) -> float:
    return sum(cpu_ms(pid) for pid in pids)


def photo(seed: int, width: int = 4000, height: int = 3000) -> bytes:
    """A JPEG with gradients, shapes and noise, so that it compresses and resamples like a photo."""
    rng = random.Random(seed)
    image = Image.radial_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(20, 300)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    image = Image.blend(image, Image.effect_noise((width, height), 40).convert("RGB"), 0.2)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def table(seed: int, rows: int = 100_000) -> bytes:
    """A CSV of mixed columns: ids, names, numbers, dates, flags."""
    rng = random.Random(seed)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "name", "city", "amount", "quantity", "ratio", "day", "active"])
    cities = ["Lyon", "Porto", "Gdańsk", "Osaka", "Quito", "Accra"]
    for i in range(rows):
        writer.writerow(
            [
                i,
                f"customer-{rng.randrange(10_000)}",
                rng.choice(cities),
                f"{rng.uniform(0, 5000):.2f}",
                rng.randrange(1, 100),
                f"{rng.random():.6f}",
                f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                rng.choice(["true", "false"]),
            ]
        )
    return buffer.getvalue().encode()


def make_files(pipeline: str, count: int) -> list[tuple[str, bytes]]:
    """`count` (name, content) pairs for `pipeline` ("images" or "tables")."""
    if pipeline == "images":
        return [(f"photo-{i:04d}.jpg", photo(i)) for i in range(count)]
    return [(f"table-{i:04d}.csv", table(i)) for i in range(count)]


def _run_one(args: tuple[str, str, bytes]) -> None:
    """The plain loop's step: the pipeline function on a local file, as a worker would call it."""
    from tasks.pipelines import PIPELINES, Job

    pipeline, name, data = args
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as scratch:
        source, out_dir = Path(scratch) / "input", Path(scratch) / "out"
        source.write_bytes(data)
        out_dir.mkdir()
        ref = ObjectRef(bucket="local", key=name, etag="-", size=len(data))
        sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
        PIPELINES[pipeline](Job(ref=ref, source=source, sha256=sha256, out_dir=out_dir, output_folder=f"out/{name}/"))


def plain_loop(pipeline: str, files: list[tuple[str, bytes]], processes: int) -> tuple[float, float]:
    """Seconds and CPU ms for a `multiprocessing` pool of `processes` to run `pipeline` over `files`."""
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pool.map(_run_one, [(pipeline, "warmup", files[0][1])] * processes)  # imports done, like a warm worker
        pids = _children(os.getpid())
        started, cpu = time.monotonic(), _cpu_ms(pids)
        pool.map(_run_one, [(pipeline, name, data) for name, data in files], chunksize=1)
        return time.monotonic() - started, _cpu_ms(pids) - cpu


def through_dropq(cloud: LocalCloud, pipeline: str, files: list[tuple[str, bytes]], run: str) -> float:
    """Seconds from the first put until the ledger has the last file done."""
    settings = cloud.settings
    s3: Any = settings.client("s3")
    ledger = ledger_for(settings)
    bucket, inbox = settings.topology.bucket, settings.topology.inbox_prefix
    keys = [f"{inbox}{run}/{name}" for name, _ in files]
    started = time.time()
    for key, (_, data) in zip(keys, files, strict=True):
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    finished = finished_at(ledger, bucket, keys, SETTLE_SECONDS, pipeline)
    return max(finished.values()) - started


def compare(cloud: LocalCloud, pipeline: str, count: int, processes: int) -> Efficiency:
    """The same `count` generated files through dropq and through the plain loop."""
    files = make_files(pipeline, count)
    through_dropq(cloud, pipeline, files[:processes], f"warmup-{pipeline}")  # warm worker processes
    (worker,) = cloud.pools[0].processes.values()
    assert cloud.server.process is not None
    pids, server = [worker.pid, *_children(worker.pid)], cloud.server.process.pid
    cpu, server_cpu = _cpu_ms(pids), cpu_ms(server)
    dropq_seconds = through_dropq(cloud, pipeline, files, f"bench-{pipeline}")
    cpu, server_cpu = _cpu_ms(pids) - cpu, cpu_ms(server) - server_cpu
    loop_seconds, loop_cpu = plain_loop(pipeline, files, processes)
    return Efficiency(pipeline, count, dropq_seconds, loop_seconds, cpu, loop_cpu, server_cpu)

"""What a pipeline receives: a local copy of the input, and a folder for its outputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropq.objects import ObjectRef


@dataclass(frozen=True)
class Job:
    """One file to process. A pipeline writes files into `out_dir`; each lands at `output_key(name)`."""

    ref: ObjectRef
    source: Path
    sha256: str
    out_dir: Path
    output_folder: str

    def output_key(self, name: str) -> str:
        """The S3 key an output file called `name` will have."""
        return self.output_folder + name

    def source_summary(self) -> dict[str, Any]:
        """The input's identity, for manifests."""
        return {"bucket": self.ref.bucket, "key": self.ref.key, "etag": self.ref.etag, "bytes": self.ref.size, "sha256": self.sha256}


# A pipeline writes its outputs for one job, or raises InputError with a reason people understand.
Pipeline = Callable[[Job], None]


# Reads bytes [start, end) of the input: from S3 (a ranged GET) in a worker, from the local copy in `Split.__call__`.
ReadRange = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Split:
    """A pipeline whose work is split in parts that run in parallel on any worker (a Celery chord).

    `plan` names the parts (JSON arguments, cheap to compute: it may read byte ranges of the input).
    Each part gets a Job whose source is the whole input, or only bytes [start, end) when its
    arguments hold `"range": [start, end]`; it writes outputs into `out_dir` and returns a JSON result.
    `combine`, the chord's callback, gets every part's result in plan order and writes the last outputs.
    A file planned as one part runs here, in the task that claimed it, without a chord.
    """

    plan: Callable[[ObjectRef, ReadRange], list[dict[str, Any]]]
    part: Callable[[Job, dict[str, Any]], dict[str, Any]]
    combine: Callable[[Job, list[dict[str, Any]]], None]

    def __call__(self, job: Job) -> None:
        """Run every part and then `combine`, one after another in this process, on the local copy of the input."""

        def read(start: int, end: int) -> bytes:
            with job.source.open("rb") as handle:
                handle.seek(start)
                return handle.read(end - start)

        results = []
        for args in self.plan(job.ref, read):
            if "range" in args:
                start, end = args["range"]
                part_source = job.source.with_name(f"{job.source.name}-{start}-{end}")
                part_source.write_bytes(read(start, end))
                results.append(self.part(Job(job.ref, part_source, job.sha256, job.out_dir, job.output_folder), args))
                part_source.unlink()
            else:
                results.append(self.part(job, args))
        self.combine(job, results)

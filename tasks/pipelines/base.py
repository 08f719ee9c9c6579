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

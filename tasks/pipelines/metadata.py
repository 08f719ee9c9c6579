"""Anything else: a metadata record (size, sha256, detected content type)."""

from __future__ import annotations

import json
import mimetypes

import filetype

from tasks.pipelines import pipeline
from tasks.pipelines.base import Job

SNIFF_BYTES = 8192


def detect_content_type(job: Job) -> tuple[str, str]:
    """(content type, how it was found): magic bytes first, then text sniffing, then the extension."""
    kind = filetype.guess(str(job.source))
    if kind is not None:
        return kind.mime, "magic bytes"
    with job.source.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    by_name = mimetypes.guess_type(job.ref.key)[0]
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut by the sniff window is still text.
            if exc.start < len(head) - 4:
                return by_name or "application/octet-stream", "extension" if by_name else "default"
        if by_name and by_name.startswith("text/"):
            return by_name, "text content and extension"
        return by_name or "text/plain", "extension" if by_name else "text content"
    return by_name or "application/octet-stream", "extension" if by_name else "default"


@pipeline("metadata")
def describe(job: Job) -> None:
    """Write metadata.json for any file."""
    content_type, detected_by = detect_content_type(job)
    record = {"source": job.source_summary(), "content_type": content_type, "detected_by": detected_by}
    (job.out_dir / "metadata.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))

"""The identity of one dropped file: an S3 object version, named by bucket, key and ETag."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ObjectRef:
    """One S3 object as an event announced it; the key is already URL-decoded."""

    bucket: str
    key: str
    etag: str
    size: int
    version_id: str | None = None

    @property
    def uri(self) -> str:
        """The object's s3:// URI."""
        return f"s3://{self.bucket}/{self.key}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form carried in task messages."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectRef:
        """The inverse of `to_dict`."""
        return cls(
            bucket=data["bucket"],
            key=data["key"],
            etag=data["etag"],
            size=int(data["size"]),
            version_id=data.get("version_id"),
        )


def parts_etag(parts: Iterable[bytes]) -> str:
    """The ETag S3 gives an object uploaded in these parts: the MD5 of the parts' MD5s, and their count."""
    digests = [hashlib.md5(part, usedforsecurity=False).digest() for part in parts]
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"

"""Webhook signatures: HMAC-SHA256 over the timestamp and the body, as receivers check them.

A receiver recomputes `sign(secret, request.headers[TIMESTAMP_HEADER], request.body)`, compares it with the
`X-Dropq-Signature` header in constant time (`verify` does both), and refuses old timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Dropq-Signature"
TIMESTAMP_HEADER = "X-Dropq-Timestamp"
# The delivery's id: the same on every attempt of one notification, for receivers to drop repeats.
DELIVERY_HEADER = "X-Dropq-Delivery"
EVENT_HEADER = "X-Dropq-Event"
# A receiver should refuse a signature older than this (`verify`'s default).
MAX_AGE_SECONDS = 5 * 60


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: "sha256=" and the hex HMAC-SHA256 of "<timestamp>.<body>" with `secret`."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, max_age: float = MAX_AGE_SECONDS, now: float | None = None) -> bool:
    """Whether a request was signed with `secret` less than `max_age` seconds ago."""
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return False
    return abs(age) <= max_age and hmac.compare_digest(sign(secret, timestamp, body), signature)

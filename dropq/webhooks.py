"""Webhooks' two safety rules: signatures that receivers check, and URLs a file may ask for only below a declared one.

A receiver recomputes `sign(secret, request.headers[TIMESTAMP_HEADER], request.body)`, compares it with the
`X-Dropq-Signature` header in constant time (`verify` does both), and refuses old timestamps (replays).

A file may ask, in its metadata, for a URL below its destination's (`below`): compared part by part once parsed and
normalised, never as strings (a prefix test lets `https://hooks.example.com.evil.net/` pass for
`https://hooks.example.com`), and rebuilt from the parts checked, so that what is called is what was checked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import quote, unquote, urlsplit, urlunsplit

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


DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 3986's characters of a path that need no percent-encoding (pchar and "/"): the one way a checked path is written.
PATH_SAFE = "/!$&'()*+,;=:@-._~"
# Whitespace, control characters and backslashes: parsers disagree on them, so a URL holding one is refused whole.
UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
# A slash or backslash written as %2F or %5C: a proxy or server may decode it into a path separator.
ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL without userinfo, normalised (case, IDNA, default port); None if it has none."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or "@" in parts.netloc or not parts.hostname:
        return None
    try:
        host = parts.hostname.rstrip(".").encode("idna").decode("ascii").lower()
        port = DEFAULT_PORTS[scheme] if parts.port is None else parts.port
    except (UnicodeError, ValueError):
        return None
    return scheme, host, port


def _path(path: str) -> str | None:
    """A URL path in its one written form (decoded, then encoded the same way), or None with a dot segment in it."""
    if ENCODED_SEPARATOR.search(path):
        return None
    decoded = unquote(path, errors="strict") if path else "/"
    # "..;x" is ".." to some servers (path parameters): a segment is judged without them.
    if any(segment.split(";", 1)[0] in (".", "..") for segment in decoded.split("/")):
        return None
    return quote(decoded, safe=PATH_SAFE)


def below(destination: str, asked: str) -> str | None:
    """The URL to call for a file that asks for `asked`, when it lies below `destination`; None when it does not.

    Below means: the same scheme, host and port once normalised (case, IDNA, default ports), no userinfo, no fragment,
    no dot segment or encoded separator in the path, and a path that is the destination's or below it at a "/". The
    URL returned is the destination's origin with the asked path (normalised) and query.
    """
    if UNSAFE.search(asked) or UNSAFE.search(destination):
        return None
    origin, wanted = _origin(destination), _origin(asked)
    if origin is None or wanted != origin:
        return None
    parts, base = urlsplit(asked), urlsplit(destination)
    if parts.fragment or "#" in asked:
        return None
    try:
        path, root = _path(parts.path), _path(base.path)
    except UnicodeDecodeError:
        return None
    if path is None or root is None:
        return None
    root = root.rstrip("/")
    if path != root and not path.startswith(f"{root}/"):
        return None
    return urlunsplit((base.scheme.lower(), base.netloc, path, parts.query, ""))

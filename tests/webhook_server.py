"""A local webhook receiver for tests: records every POST, and fails on purpose as each path asks.

`/fail-<n>/...` answers 503 to the first n requests for that path, then 200; `/always-500/...` always answers
500; `/refuse-404/...` answers 404; `/slow/...` answers after `slow_seconds`; anything else answers 200.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 in a thread, until `stop`."""

    def __init__(self, slow_seconds: float = 15.0) -> None:
        self.requests: list[Received] = []
        self.seen: dict[str, int] = defaultdict(int)
        self.slow_seconds = slow_seconds
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.answer(self.path)
                with receiver.lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body, time.time(), status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str) -> int:
        with self.lock:
            self.seen[path] += 1
            count = self.seen[path]
        if failing := re.match(r"^/fail-(\d+)/", path):
            return 503 if count <= int(failing.group(1)) else 200
        if path.startswith("/always-500/"):
            return 500
        if path.startswith("/refuse-404/"):
            return 404
        if path.startswith("/slow/"):
            time.sleep(self.slow_seconds)
        return 200

    def received(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

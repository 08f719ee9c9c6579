"""Proxies on 127.0.0.1 in front of the moto server, for the faults of a real AWS endpoint.

- `OutageProxy` (TCP) makes the endpoint disappear and come back (a broker outage): while cut, it closes every open
  connection and refuses new ones, as a vanished endpoint does; the moto server behind it keeps its state, as SQS
  keeps its messages through an outage.
- `FaultProxy` (HTTP) answers a share of chosen requests with the errors AWS itself returns under load, with their
  status codes, headers and bodies: DynamoDB's throttling, S3's 503 Slow Down, SQS's 500 InternalFailure.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import random
import socket
import threading
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from infra.local.server import free_port


class OutageProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target`; `cut()` and `restore()` the endpoint."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> OutageProxy:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.2)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="outage-proxy", daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            source.settimeout(None)
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._connections.discard(sock)

    def cut(self) -> None:
        """The endpoint disappears: nothing listens, open connections are reset."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()

    def restore(self) -> None:
        """The endpoint is back on the same port."""
        self.start()

    def stop(self) -> None:
        self.cut()


@dataclass(frozen=True)
class Fault:
    """Answer a `fraction` of one service's requests of some actions with AWS's own error (status, headers, body)."""

    service: str  # "dynamodb", "sqs" or "s3"
    actions: frozenset[str]  # JSON targets ("UpdateItem") or, for S3, HTTP methods ("GET", "PUT")
    fraction: float
    # A DynamoDB fault applies to this table only (None: every table).
    table: str | None = None


def _request_id() -> str:
    return uuid.uuid4().hex.upper()[:20]


def dynamodb_throttling(alternate: int) -> tuple[int, dict[str, str], bytes]:
    """DynamoDB refusing a write for throughput, as it answers: on-demand's ThrottlingException, or the provisioned
    ProvisionedThroughputExceededException (both 400, JSON 1.0)."""
    if alternate % 2:
        kind = "com.amazon.coral.availability#ThrottlingException"
        message = (
            "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your table or "
            "index so please try again shortly. If exceptions persist, check if you have a hot key: "
            "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html."
        )
    else:
        kind = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
        message = (
            "The level of configured provisioned throughput for the table was exceeded. "
            "Consider increasing your provisioning level with the UpdateTable API."
        )
    body = json.dumps({"__type": kind, "message": message}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": _request_id(), "x-amz-crc32": str(zlib.crc32(body))}
    return 400, headers, body


def s3_slow_down() -> tuple[int, dict[str, str], bytes]:
    """S3's 503 Slow Down, with its XML error document."""
    request_id = _request_id()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>'
        f"<RequestId>{request_id}</RequestId><HostId>{base64.b64encode(os.urandom(48)).decode()}</HostId></Error>"
    ).encode()
    return 503, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body


def sqs_internal_error() -> tuple[int, dict[str, str], bytes]:
    """SQS failing on its side (500 InternalFailure), in its JSON protocol with the query-compatible error header."""
    body = json.dumps(
        {"__type": "com.amazon.coral.service#InternalFailure", "message": "We encountered an internal error. Please try again."}
    ).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "x-amzn-RequestId": _request_id(),
        "x-amzn-query-error": "InternalFailure;Receiver",
    }
    return 500, headers, body


# Requests from a client whose User-Agent carries this application id (botocore's user_agent_appid) are never faulted:
# the test's own uploads and checks, which are not the system under test.
EXEMPT_APP = "app/dropq-test"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"})


class FaultProxy:
    """An HTTP proxy on 127.0.0.1:`port` in front of the moto server on `target`, answering some requests with AWS's errors.

    It reads each request whole (what its service and action are: the JSON protocols' X-Amz-Target, else S3 by method),
    forwards it, and returns moto's answer; while faults are set, a seeded share of the matching requests gets AWS's
    error instead and never reaches moto. `injected` counts what was refused, by (service, action).
    """

    def __init__(self, target: int, seed: int = 7) -> None:
        self.target = target
        self.port = free_port()
        self.faults: tuple[Fault, ...] = ()
        self.injected: Counter[tuple[str, str]] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults = faults

    def clear(self) -> None:
        self.inject()

    def _verdict(self, method: str, target: str, body: bytes, agent: str) -> tuple[int, dict[str, str], bytes] | None:
        if EXEMPT_APP in agent:
            return None
        if target:
            prefix, _, action = target.partition(".")
            service = "dynamodb" if prefix.startswith("DynamoDB") else "sqs" if prefix == "AmazonSQS" else prefix.lower()
        else:
            service, action = "s3", method
        with self._lock:
            for fault in self.faults:
                if fault.service != service or action not in fault.actions:
                    continue
                if fault.table is not None and json.loads(body or b"{}").get("TableName") != fault.table:
                    continue
                if self._random.random() >= fault.fraction:
                    return None
                self.injected[(service, action)] += 1
                if service == "dynamodb":
                    return dynamodb_throttling(self.injected[(service, action)])
                return s3_slow_down() if service == "s3" else sqs_internal_error()
        return None

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:  # the test's output is the fault table, not a line per request
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                verdict = proxy._verdict(self.command, self.headers.get("X-Amz-Target", ""), body, self.headers.get("User-Agent", ""))
                if verdict is None:
                    upstream = http.client.HTTPConnection("127.0.0.1", proxy.target, timeout=60)
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    status, reply, content = answer.status, dict(answer.getheaders()), answer.read()
                    upstream.close()
                else:
                    status, reply, content = verdict
                self.send_response(status)
                for name, value in reply.items():
                    if name.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

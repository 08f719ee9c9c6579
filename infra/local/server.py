"""A moto server in a child process, bound to loopback."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from infra.local.meter import METER_ENV
from infra.local.processes import start_process, stop_process

STARTUP_SECONDS = 30


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    """A port the kernel says is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MotoServer:
    """moto's server (infra/local/moto_main.py) on 127.0.0.1:`port`, logging to `log_path`.

    With `record_to`, moto's recorder appends every request it serves to that file, one JSON
    object a line: the way tests count requests at the server (see `recorded_actions`).
    With `meter_to`, the server meters every DynamoDB request to that file: the table, index and
    partition key it lands on and the units it costs (infra/local/meter.py; read it with `read_meter`).
    """

    def __init__(self, port: int, log_path: Path, record_to: Path | None = None, meter_to: Path | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self.record_to = record_to
        self.meter_to = meter_to
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """Where AWS clients reach this server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it answers."""
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} on 127.0.0.1 is taken; stop what uses it or pass --port")
        command = [sys.executable, "-m", "infra.local.moto_main", "-H", "127.0.0.1", "-p", str(self.port)]
        env = None
        if self.record_to is not None:
            env = {**os.environ, "MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(self.record_to.resolve())}
        if self.meter_to is not None:
            env = {**(env or os.environ), METER_ENV: str(self.meter_to.resolve())}
        self.process = start_process(command, self.log_path, env=env)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}; see {self.log_path}")
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).close()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"moto server did not answer on {self.endpoint_url} within {STARTUP_SECONDS}s; see {self.log_path}")

    def reset_recording(self) -> None:
        """Forget the requests recorded so far."""
        self._recorder("reset-recording")

    def record(self, on: bool) -> None:
        """Start or pause the recorder (it writes every request to disk, which slows the server down)."""
        self._recorder("start-recording" if on else "stop-recording")

    def _recorder(self, action: str) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint_url}/moto-api/recorder/{action}", method="POST")).close()

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None:
            stop_process(self.process, timeout=10)
            self.process = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request moto recorded: its service and action, the app id its client named itself with, the SQS queue it names."""

    service: str
    action: str
    app: str = ""
    queue_url: str = ""


def _app(user_agent: str) -> str:
    """The `app/<id>` a client names itself with (botocore's user_agent_appid), or ''."""
    return next((part[4:] for part in user_agent.split() if part.startswith("app/")), "")


def recorded_requests(recording: Path, start: int = 0) -> list[RecordedRequest]:
    """The requests of a moto recording from line `start` on (moto's own API left out)."""
    requests: list[RecordedRequest] = []
    if not recording.exists():
        return requests
    with recording.open() as lines:
        for number, line in enumerate(lines):
            if number < start:
                continue
            request = json.loads(line)
            if "/moto-api/" in request["url"]:
                continue
            headers = {k.lower(): v for k, v in request["headers"].items()}
            target = headers.get("x-amz-target", "")
            app = _app(headers.get("user-agent", ""))
            if not target:
                requests.append(RecordedRequest("s3", request["method"], app))
                continue
            # JSON protocol: "AmazonSQS.ReceiveMessage", "DynamoDB_20120810.Query"
            prefix, _, action = target.partition(".")
            service = {"AmazonSQS": "sqs", "AmazonEC2ContainerServiceV20141113": "ecs"}.get(
                prefix, "dynamodb" if prefix.startswith("DynamoDB") else prefix.lower()
            )
            queue_url = ""
            if service == "sqs" and request.get("body"):
                body = base64.b64decode(request["body"]) if request.get("body_encoded") else request["body"].encode()
                queue_url = json.loads(body or b"{}").get("QueueUrl", "")
            requests.append(RecordedRequest(service, action, app, queue_url))
    return requests


def recorded_actions(recording: Path) -> Counter[tuple[str, str]]:
    """Count the (service, action) pairs of a moto recording: "sqs", "ReceiveMessage" and so on."""
    return Counter((r.service, r.action) for r in recorded_requests(recording))

"""A local stand-in for the ECS agent's task scale-in protection endpoint (no ECS agent runs here).

It answers `PUT` and `GET $ECS_AGENT_URI/task-protection/v1/state` as the agent documents it: the request
needs a boolean ProtectionEnabled and accepts ExpiresInMinutes in 1..2880 (default 120); the answer is
{"protection": {...}}, or {"error": {...}} with HTTP 400 for a bad request, or {"failure": {...}} when
ECS refuses (`refuse` makes it do so, as for a task outside a service).
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/task-protection/v1/state"
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/dropq-cluster/0123456789abcdef0123456789abcdef"


class FakeEcsAgent:
    """The agent endpoint on 127.0.0.1; `changes` lists (epoch time, enabled, minutes) per accepted PUT."""

    def __init__(self) -> None:
        self.enabled = False
        self.expires: datetime | None = None
        self.changes: list[tuple[float, bool, int | None]] = []
        self.refuse = False
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path != agent.path:
                    return self._answer(404, {"error": {"Code": "NotFound", "Message": self.path}})
                return self._answer(200, agent.state())

            def do_PUT(self) -> None:
                if self.path != agent.path:
                    return self._answer(404, {"error": {"Code": "NotFound", "Message": self.path}})
                try:
                    request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                except ValueError:
                    return self._answer(400, agent.error("InvalidRequest", "the request body is not JSON"))
                enabled, minutes = request.get("ProtectionEnabled"), request.get("ExpiresInMinutes")
                if not isinstance(enabled, bool):
                    return self._answer(400, agent.error("InvalidRequest", "ProtectionEnabled must be a boolean"))
                if minutes is not None and not (isinstance(minutes, int) and 1 <= minutes <= 2880):
                    return self._answer(400, agent.error("InvalidRequest", "ExpiresInMinutes must be in 1..2880"))
                if agent.refuse:
                    return self._answer(200, {"failure": {"Arn": TASK_ARN, "Reason": "TASK_NOT_VALID", "Detail": None}})
                agent.set(enabled, minutes)
                return self._answer(200, agent.state())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Like the agent's (http://169.254.170.2/api/<task id>), the URI has a path of its own.
        self.path = f"/api/{TASK_ARN.rsplit('/', 1)[1]}{PATH}"
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}{self.path.removesuffix(PATH)}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def set(self, enabled: bool, minutes: int | None) -> None:
        self.enabled = enabled
        self.expires = datetime.now(UTC) + timedelta(minutes=minutes or 120) if enabled else None
        self.changes.append((time.time(), enabled, minutes))

    def state(self) -> dict[str, Any]:
        expiration = self.expires.isoformat().replace("+00:00", "Z") if self.expires else None
        return {"protection": {"ExpirationDate": expiration, "ProtectionEnabled": self.enabled, "TaskArn": TASK_ARN}}

    @staticmethod
    def error(code: str, message: str) -> dict[str, Any]:
        return {"error": {"Arn": TASK_ARN, "Code": code, "Message": message}}

    def __enter__(self) -> FakeEcsAgent:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

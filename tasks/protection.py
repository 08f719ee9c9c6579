"""ECS task scale-in protection: a busy worker asks ECS not to stop its task when the service scales in.

The ECS agent serves `$ECS_AGENT_URI/task-protection/v1/state` inside every task (`Settings.ecs_agent_uri`);
outside ECS the variable is unset and workers do without.
Reference: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("dropq.worker")

STATE_PATH = "/task-protection/v1/state"
# ECS accepts 1..2880 minutes; the worker renews well before expiry while it stays busy.
EXPIRES_IN_MINUTES = 60
RENEW_AFTER_SECONDS = EXPIRES_IN_MINUTES * 60 // 2
REQUEST_TIMEOUT_SECONDS = 5


def _json(data: bytes) -> dict[str, Any]:
    """The agent's JSON answer, or {} for anything else (an empty or non-JSON body)."""
    try:
        answer = json.loads(data or b"{}")
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


class ProtectionError(RuntimeError):
    """The ECS agent refused or failed to change the task's protection."""


class TaskProtection:
    """Turns this task's scale-in protection on while busy and off once idle, calling the agent only on changes."""

    def __init__(self, agent_uri: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = agent_uri.rstrip("/") + STATE_PATH
        self.clock = clock
        self.enabled = False
        self.set_at = 0.0

    def update(self, busy: bool) -> None:
        """Protect the task while `busy`; renew the protection before it expires; drop it when idle."""
        renew = busy and self.enabled and self.clock() - self.set_at >= RENEW_AFTER_SECONDS
        if busy == self.enabled and not renew:
            return
        self._put({"ProtectionEnabled": True, "ExpiresInMinutes": EXPIRES_IN_MINUTES} if busy else {"ProtectionEnabled": False})
        self.enabled, self.set_at = busy, self.clock()
        logger.info("ECS task scale-in protection %s", "on" if busy else "off")

    def _put(self, body: dict[str, object]) -> None:
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), method="PUT", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                answer = _json(response.read())
        except urllib.error.HTTPError as exc:
            answer = _json(exc.read())
            if not answer:
                raise ProtectionError(f"the ECS agent answered HTTP {exc.code} to {body}") from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise ProtectionError(f"cannot reach the ECS agent at {self.url}: {exc}") from exc
        # The agent answers {"protection": {...}} on success, {"failure": {...}} or {"error": {...}} otherwise.
        if "protection" not in answer:
            problem = answer.get("failure") or answer.get("error") or answer
            raise ProtectionError(f"the ECS agent did not set protection {body}: {problem}")

"""Countdowns and ETAs wait in SQS, not in a worker: per-message delays, and hops for those longer than SQS allows.

A task with a countdown or ETA is sent with a per-message delay (at most `delay_hop_seconds`; SQS allows 15 minutes).
One received more than HOLD_SECONDS before its ETA hops: it is sent again with the delay that remains and the copy
received is deleted. Celery would instead hold it unacknowledged in the worker, past its visibility timeout (run twice)
or its worker's life.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dropq.topology import SQS_MAX_DELAY_SECONDS

logger = logging.getLogger("dropq.worker")

# A message due within this many seconds of its receipt is handed to Celery, which holds it until its ETA;
# one due later hops (SQS delays are whole seconds, so a message may arrive up to a second early).
HOLD_SECONDS = 1.0


def seconds_until(eta: Any, now: float) -> float | None:
    """Seconds from `now` (epoch seconds) until a Celery ETA header (ISO 8601); None without a readable one."""
    if not isinstance(eta, str):
        return None
    try:
        moment = datetime.fromisoformat(eta)
    except ValueError:
        return None
    if moment.tzinfo is None:  # Celery writes UTC (enable_utc)
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() - now


def delay_for(remaining: float | None, hop_seconds: int) -> int:
    """The SQS delay of a message due in `remaining` seconds: whole seconds, rounded down, at most one hop."""
    if remaining is None or remaining < 1:
        return 0
    return min(int(remaining), hop_seconds)


def task_headers(body: str) -> dict[str, Any]:
    """The Celery headers of an SQS message body written by kombu (base64 JSON); empty if it has none."""
    try:
        envelope = json.loads(base64.b64decode(body, validate=True))
    except (ValueError, TypeError):
        return {}
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    return headers if isinstance(headers, dict) else {}


def hop_seconds(transport_options: Mapping[str, Any]) -> int:
    """The longest delay one SQS message gets (the `delay_hop_seconds` transport option, within SQS's 1 to 900 s)."""
    return max(1, min(SQS_MAX_DELAY_SECONDS, int(transport_options.get("delay_hop_seconds", SQS_MAX_DELAY_SECONDS))))


class Delays:
    """Puts a message's countdown into its SQS delay, and sends again the messages that arrive well before their ETA."""

    def __init__(self, hop_seconds: int, sqs: Callable[[str], Any], clock: Callable[[], float] = time.time) -> None:
        self.hop_seconds = hop_seconds
        self._sqs = sqs  # a queue name -> its blocking SQS client (kombu's `sqs(queue=...)`)
        self._clock = clock

    def set_delay(self, message: dict[str, Any]) -> None:
        """Give a kombu message about to be sent the SQS delay its ETA asks for (kombu sends `delay_seconds`)."""
        properties = message.setdefault("properties", {})
        for stale in ("delay_seconds", "DelaySeconds"):  # a message sent again carries its first delay
            properties.pop(stale, None)
        delay = delay_for(seconds_until((message.get("headers") or {}).get("eta"), self._clock()), self.hop_seconds)
        if delay:
            properties["delay_seconds"] = delay

    def hop_early(self, url: str, name: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send again, with the delay that remains, the messages received over HOLD_SECONDS before their ETA; return the rest."""
        due = []
        for message in messages:
            headers = task_headers(message.get("Body", ""))
            remaining = seconds_until(headers.get("eta"), self._clock())
            if remaining is None or remaining <= HOLD_SECONDS:
                due.append(message)
                continue
            delay = delay_for(remaining, self.hop_seconds)
            sqs = self._sqs(name)
            try:
                sqs.send_message(QueueUrl=url, MessageBody=message["Body"], DelaySeconds=delay)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            except (ClientError, BotoCoreError) as exc:
                # The received copy comes back after its visibility timeout and hops then; a copy sent twice runs once (the ledger).
                logger.warning("a delayed message of %s could not hop (%s); it comes back to try again", name, exc)
                continue
            logger.info("task %s is due in %.0fs: hopped, back in %ds", headers.get("id"), remaining, delay)
        return due

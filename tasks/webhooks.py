"""Webhooks: when a file succeeds or fails, its outcome is POSTed as signed JSON to the destination it names.

A file names a destination of the topology (`webhooks`) by its key (the destination's `patterns`) or by its
metadata (`x-amz-meta-dropq-webhook`: the destination's name, or a URL below the destination's URL). Only
declared destinations are ever called, with their URL and secret from the deployment's settings.
Each destination has a task of its own, `dropq.webhook.<name>`, so that Celery's rate limit applies per
destination. 5xx, 429, 408, timeouts and refused connections are retried with backoff (through SQS
delays); another 4xx, or the last attempt, ends it. The ledger keeps the delivery's outcome (`webhook`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from dropq.ledger import Ledger
from dropq.objects import ObjectRef
from dropq.settings import WebhookEndpoint
from dropq.topology import Webhook
from dropq.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tasks.app import app, settings
from tasks.backoff import backoff
from tasks.notify import delivery_task
from tasks.services import clients

logger = logging.getLogger("dropq.worker")

CONNECT_TIMEOUT_SECONDS = 3.05
RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Attempt:
    """How one POST went: delivered, worth another try, or refused for good; `detail` says it to a person."""

    delivered: bool
    retry: bool
    detail: str
    status: int | None = None


def post(url: str, payload: dict[str, Any], secret: str, timeout: float, delivery_id: str) -> Attempt:
    """POST `payload` as JSON to `url`, signed with `secret` (dropq/webhooks.py)."""
    body = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "dropq-webhook/1",
        EVENT_HEADER: str(payload.get("event", "")),
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    try:
        response = requests.post(url, data=body, headers=headers, timeout=(CONNECT_TIMEOUT_SECONDS, timeout), allow_redirects=False)
    except requests.Timeout:
        return Attempt(delivered=False, retry=True, detail=f"no answer within {timeout:g}s")
    except requests.ConnectionError as exc:
        return Attempt(delivered=False, retry=True, detail=f"could not connect ({type(exc).__name__})")
    status = response.status_code
    detail = f"{status} {response.reason or ''}".strip()
    if 200 <= status < 300:
        return Attempt(delivered=True, retry=False, detail=detail, status=status)
    return Attempt(delivered=False, retry=status >= 500 or status in RETRIED_STATUSES, detail=detail, status=status)


def _record(ledger: Ledger, ref: ObjectRef, webhook: str, **outcome: Any) -> None:
    ledger.mark_webhook(ref, {"name": webhook, "at": datetime.now(UTC).isoformat(timespec="seconds"), **outcome})


def _delivery_task(webhook: Webhook, endpoint: WebhookEndpoint | None) -> Any:
    rate_limit = (endpoint.rate_limit if endpoint else None) or webhook.rate_limit

    @app.task(name=delivery_task(webhook.name), bind=True, acks_late=True, rate_limit=rate_limit, ignore_result=True)
    def deliver(self: Any, *, url: str, payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
        ref, ledger, attempts = ObjectRef.from_dict(fields), clients()[1], self.request.retries + 1
        if endpoint is None:
            _record(ledger, ref, webhook.name, state="failed", reason="this deployment sets no URL and secret for it", attempts=0)
            return {"state": "failed"}
        attempt = post(url, payload, endpoint.secret, webhook.timeout_seconds, self.request.id)
        if attempt.delivered:
            _record(ledger, ref, webhook.name, state="delivered", status=attempt.status, attempts=attempts)
            logger.info("webhook %s: %s delivered (%s) after %d attempt(s)", webhook.name, ref.uri, attempt.detail, attempts)
            return {"state": "delivered"}
        if attempt.retry and attempts < webhook.max_attempts:
            countdown = backoff(self.request.retries)
            logger.warning("webhook %s: %s: %s; attempt %d again in %ss", webhook.name, ref.uri, attempt.detail, attempts + 1, countdown)
            raise self.retry(countdown=countdown, max_retries=webhook.max_attempts)
        reason = (
            f"gave up after {attempts} attempts: {attempt.detail}" if attempt.retry else f"the destination refused it: {attempt.detail}"
        )
        _record(ledger, ref, webhook.name, state="failed", status=attempt.status, reason=reason, attempts=attempts)
        logger.warning("webhook %s: %s: %s", webhook.name, ref.uri, reason)
        return {"state": "failed", "reason": reason}

    return deliver


DELIVERIES = {webhook.name: _delivery_task(webhook, settings.webhook(webhook.name)) for webhook in settings.topology.webhooks}

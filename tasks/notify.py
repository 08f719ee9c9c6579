"""Sending a file's recorded outcome to the webhook it names (tasks/webhooks.py delivers it): by its key's pattern or
its metadata, only ever a destination the deployment declares."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dropq.ledger import Ledger
from dropq.objects import ObjectRef
from dropq.topology import Webhook
from dropq.webhooks import below
from tasks.app import app, settings

logger = logging.getLogger("dropq.worker")

# The object metadata key a file names its webhook with (x-amz-meta-dropq-webhook).
METADATA_KEY = "dropq-webhook"


def delivery_task(name: str) -> str:
    """The name of the task that delivers to the destination `name` (one each, for its own rate limit)."""
    return f"dropq.webhook.{name}"


def destination(ref: ObjectRef, s3: Any) -> tuple[Webhook, str] | str | None:
    """The webhook a file names and the URL to call, a reason it cannot be called, or None when it names none."""
    topology = settings.topology
    if not any(settings.webhook(w.name) for w in topology.webhooks):
        return None  # none configured in this deployment: no lookup at all
    relative = ref.key[len(topology.inbox_prefix) :] if ref.key.startswith(topology.inbox_prefix) else ref.key
    for webhook in topology.webhooks:
        endpoint = settings.webhook(webhook.name)
        if endpoint and webhook.matches(relative):
            return webhook, endpoint.url
    try:
        asked = s3.head_object(Bucket=ref.bucket, Key=ref.key, IfMatch=f'"{ref.etag}"').get("Metadata", {}).get(METADATA_KEY)
    except (ClientError, BotoCoreError):
        return None  # deleted or overwritten since: its metadata is gone with it
    if not asked:
        return None
    for webhook in topology.webhooks:
        endpoint = settings.webhook(webhook.name)
        if endpoint and asked == webhook.name:
            return webhook, endpoint.url
        url = below(endpoint.url, asked) if endpoint else None
        if url is not None:
            return webhook, url
    return f"its metadata asks for a webhook that is not a destination of this deployment: {asked[:200]!r}"


def notify(ref: ObjectRef, outcome: dict[str, Any], s3: Any, ledger: Ledger) -> None:
    """Send a recorded outcome to the file's webhook, if it names one; never raises (the outcome is recorded already)."""
    try:
        found = destination(ref, s3)
        if found is None:
            return
        if isinstance(found, str):
            ledger.mark_webhook(ref, {"state": "failed", "reason": found, "attempts": 0})
            return
        webhook, url = found
        payload = {"event": f"file.{outcome['state']}", "bucket": ref.bucket, "key": ref.key, "etag": ref.etag, **outcome}
        # By name: each destination's delivery task is registered by tasks/webhooks.py.
        app.send_task(
            delivery_task(webhook.name), kwargs={**ref.to_dict(), "url": url, "payload": payload}, queue=settings.topology.default_queue
        )
    except Exception:  # a webhook is a courtesy: the file's outcome stands, and the log says why none was sent
        logger.exception("webhook for %s could not be sent", ref.uri)

"""Celery's DynamoDB result backend, waiting for DynamoDB when a worker starts while it cannot be reached.

Celery's backend checks its table when the worker starts and the worker exits on any error: a worker
started during a network blip (or while the local endpoint restarts) would be gone for good locally,
and restarted over and over by ECS. It waits instead, as Celery waits for the broker on startup.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from celery.backends import dynamodb

from tasks.storage import is_transient

logger = logging.getLogger("dropq.worker")

STARTUP_WAIT_SECONDS = 120
MAX_DELAY_SECONDS = 10


class DynamoDBBackend(dynamodb.DynamoDBBackend):
    """The DynamoDB result backend, whose startup check of the table is retried while DynamoDB is unreachable."""

    def _get_client(self, *args: Any, **kwargs: Any) -> Any:
        deadline, delay = time.monotonic() + STARTUP_WAIT_SECONDS, 1.0
        while True:
            try:
                return super()._get_client(*args, **kwargs)
            except (BotoCoreError, ClientError) as exc:
                if not is_transient(exc) or time.monotonic() + delay > deadline:
                    raise
                logger.warning("the results table cannot be reached (%s); trying again in %.0fs", exc, delay)
                self._client = None
                time.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_SECONDS)

"""dropq's Celery app and pipelines: `celery -A tasks worker` runs them."""

from tasks import heartbeat, periodic, process, shutdown, webhooks  # noqa: F401  (register the tasks, the heartbeat and the shutdown deadline)
from tasks.app import app, settings

__all__ = ["app", "settings"]

"""dropq's Celery app and pipelines: `celery -A tasks worker` runs them."""

from tasks import heartbeat, process  # noqa: F401  (register the task and the worker heartbeat)
from tasks.app import app, settings

__all__ = ["app", "settings"]

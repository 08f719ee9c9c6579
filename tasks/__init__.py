"""dropq's Celery app and pipelines: `celery -A tasks worker` runs them."""

from tasks.contract import require

# Before anything else: a worker on kombu or Celery versions whose private parts dropq overrides have changed
# would run without its fixes (tasks/contract.py); it refuses to start instead, naming what changed.
require()

from tasks import heartbeat, parts, periodic, process, shutdown, webhooks  # noqa: E402, F401  (register the tasks, the heartbeat and the shutdown deadline)
from tasks.app import app, settings  # noqa: E402

__all__ = ["app", "settings"]

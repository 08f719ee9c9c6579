"""The Celery application that workers run (`celery -A tasks worker`)."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from dropq.errors import ConfigError
from dropq.settings import load_settings, require_deployment
from dropq.signing import materialize
from tasks.config import celery_config

settings = materialize(load_settings())
app = Celery("dropq")
app.config_from_object(celery_config(settings))
if settings.signing_key:
    app.setup_security(allowed_serializers=["json"], serializer="json")


@signals.worker_init.connect
def _deployed(**_: Any) -> None:
    """A worker that would talk to AWS without its settings stops at start, naming them (SystemExit: Celery logs and
    goes past any Exception a signal handler raises)."""
    try:
        require_deployment()
    except ConfigError as exc:
        raise SystemExit(f"dropq's worker cannot start: {exc}") from exc

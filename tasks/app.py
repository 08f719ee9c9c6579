"""The Celery application that workers run (`celery -A tasks worker`)."""

from __future__ import annotations

from celery import Celery

from dropq.settings import load_settings
from dropq.signing import materialize
from tasks.config import celery_config

settings = materialize(load_settings())
app = Celery("dropq")
app.config_from_object(celery_config(settings))
if settings.signing_key:
    app.setup_security(allowed_serializers=["json"], serializer="json")

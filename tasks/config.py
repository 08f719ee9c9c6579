"""Celery's configuration, derived from dropq's settings and topology (one place, no other source)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from celery.signals import after_setup_logger
from kombu import Queue

from dropq.settings import LOCAL_CREDENTIALS, Settings
from dropq.topology import SQS_MAX_WAIT_SECONDS

# Celery's two INFO lines per task ("Task ... received", "Task ... succeeded in ...") cost a measurable share of a
# worker's CPU at high rates; dropq's JSON events (dropq/observe.py) replace them. Failures still log at ERROR.
QUIET_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


@after_setup_logger.connect
def quiet_task_lines(**_: Any) -> None:
    """Log Celery's per-task lines from WARNING up (a worker calls this once its logging is set up)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _local_credentials(settings: Settings) -> str:
    """`key:secret@` for the local cloud's dummy credentials; empty for AWS (the default credential chain)."""
    if not settings.is_local:
        return ""
    return f"{LOCAL_CREDENTIALS['AWS_ACCESS_KEY_ID']}:{LOCAL_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}@"


def broker_url(settings: Settings) -> str:
    """kombu's SQS URL: the local endpoint with its dummy credentials, or plain `sqs://` for AWS."""
    if not settings.endpoint_url:
        return "sqs://"
    parts = urlsplit(settings.endpoint_url)
    return f"sqs://{_local_credentials(settings)}{parts.hostname}:{parts.port or 80}"


def result_backend_url(settings: Settings) -> str:
    """Celery's DynamoDB backend URL (dropq's subclass, tasks/results.py), with the topology's results table and TTL."""
    topology = settings.topology
    return f"tasks.results:DynamoDBBackend+dynamodb://{_local_credentials(settings)}{settings.region}/{settings.physical_name(topology.results_table.name)}?ttl_seconds={topology.result_ttl_seconds}"


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings for this deployment."""
    topology = settings.topology
    secure = not settings.endpoint_url or settings.endpoint_url.startswith("https")
    pool = topology.pool(settings.pool) if settings.pool else topology.pools[0]
    time_limit = min(topology.queue(name).task_time_limit for name in pool.queues)
    config: dict[str, Any] = {
        "broker_url": broker_url(settings),
        # kombu's SQS transport, releasing what it gives back and extending what it holds (tasks/broker/).
        "broker_transport": "tasks.broker.transport:Transport",
        "broker_transport_options": {
            "region": settings.region,
            "is_secure": secure,
            # Queues are provisioned by the topology: never ListQueues/CreateQueue at run time.
            "predefined_queues": {q.name: {"url": settings.queue_url(q.name)} for q in topology.queues},
            # Long polling: one ReceiveMessage waits up to 20 s instead of polling an empty queue; the next
            # starts at once (tasks/broker/polls.py), or after `polling_interval` seconds when a receive failed.
            "wait_time_seconds": SQS_MAX_WAIT_SECONDS,
            "polling_interval": 1,
            # A worker receives once a batch fits in what it may hold (tasks/broker/polls.py).
            "receive_batch": pool.receive_batch,
            # Countdowns and ETAs wait in SQS, a hop of at most this many seconds at a time (tasks/broker/delays.py).
            "delay_hop_seconds": settings.delay_hop_seconds,
        },
        "broker_connection_retry_on_startup": True,
        "result_backend": result_backend_url(settings),
        "result_expires": topology.result_ttl_seconds,
        # Results are written only where something reads them: a chord's parts (tasks/parts.py) and nothing else.
        # The ledger records every file's outcome; a result per task would cost a GetItem and a PutItem each.
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": topology.default_queue,
        "task_queues": tuple(Queue(q.name, routing_key=q.name) for q in topology.queues),
        "task_create_missing_queues": False,
        "task_acks_late": True,
        # A worker child killed mid-task (OOM, SIGKILL) puts the message back instead of acking it.
        "task_reject_on_worker_lost": True,
        # Messages that cannot be run are rejected towards the dead-letter queue, not dropped (tasks/consumer.py).
        "worker_consumer": "tasks.consumer:Consumer",
        # Celery's prefork pool, ending an idle pool's processes at once when the worker stops (tasks/pool.py).
        "worker_pool": "tasks.pool:TaskPool",
        "task_time_limit": time_limit,
        "task_soft_time_limit": max(1, int(time_limit * 0.9)),
        # One message per process, plus the pool's `prefetch` in hand (10: one ReceiveMessage); the worker's
        # command line sets it for its actual concurrency (infra/worker.py).
        "worker_prefetch_multiplier": pool.prefetch_multiplier(),
        # SQS has no broadcast: remote control, events, gossip and mingle cannot work on it.
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": True,
        # Your own pipelines (DROPQ_PIPELINE_MODULES), registered with `@pipeline` when the worker starts.
        "imports": list(settings.pipeline_modules),
    }
    if settings.endpoint_url:
        config["dynamodb_endpoint_url"] = settings.endpoint_url
    if settings.signing_key:
        # Only messages signed by a certificate in the store are accepted (tasks/app.py calls setup_security).
        config.update(
            task_serializer="auth",
            accept_content=["auth"],
            security_key=settings.signing_key,
            security_certificate=settings.signing_cert,
            security_cert_store=settings.signing_cert_store,
            security_digest="sha256",
        )
    return config

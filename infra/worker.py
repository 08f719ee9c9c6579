"""How a worker of a pool is started, the same way in a local process and in a Fargate container."""

from __future__ import annotations

from dropq.settings import POOL
from dropq.topology import WorkerPool

# SIGTERM (what Fargate and the local cloud send to stop a worker) starts Celery's warm shutdown:
# no new messages, running tasks finish; after the pool's `shutdown_grace` the rest are released
# to other workers (tasks/shutdown.py), all before the stop timeout's SIGKILL.
WORKER_ENVIRONMENT = {"PYTHONUNBUFFERED": "1"}


def worker_environment(pool: WorkerPool) -> dict[str, str]:
    """The environment a worker of `pool` needs on top of the deployment's settings."""
    return {**WORKER_ENVIRONMENT, POOL: pool.name}


def worker_arguments(pool: WorkerPool, hostname: str) -> list[str]:
    """The arguments after `celery` that start one worker of `pool` named `hostname`."""
    return [
        "-A",
        "tasks",
        "worker",
        "--queues",
        ",".join(pool.queues),
        "--concurrency",
        str(pool.concurrency),
        "--prefetch-multiplier",
        str(pool.prefetch_multiplier()),
        "--hostname",
        hostname,
        "--loglevel",
        "INFO",
        # Gossip, mingle and heartbeats need a broadcast exchange; SQS has none.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]

"""How a worker of a pool is started, the same way in a local process and in a Fargate container."""

from __future__ import annotations

from infra.topology import WorkerPool

# SIGTERM (what Fargate and the local cloud send to stop a worker) starts Celery's soft shutdown:
# running tasks get the pool's `soft_shutdown_timeout`, then unfinished ones are requeued, all
# before the stop timeout's SIGKILL. Without it SIGTERM waits for tasks however long they run.
WORKER_ENVIRONMENT = {"REMAP_SIGTERM": "SIGQUIT", "PYTHONUNBUFFERED": "1"}


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
        "--hostname",
        hostname,
        "--loglevel",
        "INFO",
        # Gossip, mingle and heartbeats need a broadcast exchange; SQS has none.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]

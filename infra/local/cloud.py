"""The local cloud as one object: what `dropq up` runs and what the end-to-end tests stand on."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from dropq.backfill import Checkpoint, listed, walk
from dropq.deployment import local_deployment
from dropq.enqueue import events
from dropq.ledger import ledger_for
from dropq.schedules import SCHEDULE_FIELD, TIME_FIELD, period_id
from dropq.settings import Settings
from dropq.signing import signer_for
from dropq.topology import RECEIVE_VISIBILITY_SECONDS, Schedule
from infra.local import state
from infra.local.autoscaler import Autoscaler
from infra.local.processes import start_process, stop_process
from infra.local.provision import LOCAL_INVOCATIONS_QUEUE, provision, provision_bucket
from infra.local.scheduler import LocalScheduler
from infra.local.server import MotoServer
from infra.local.workers import WorkerSet
from infra.scaling import scaling_policy

logger = logging.getLogger("dropq.local")

PRODUCER_HANDLER = "lambdas.producer.handler.handler"
# Seconds between the local autoscaler's readings of the queues (CloudWatch's are a minute apart).
AUTOSCALE_INTERVAL = 2.0


class LocalCloud:
    """A moto server with the topology provisioned, the producer behind S3 notifications and the schedules, and workers."""

    def __init__(
        self,
        settings: Settings,
        workers: int | Mapping[str, int] | None = None,
        record: bool = False,
        autoscale_interval: float = AUTOSCALE_INTERVAL,
        cooldowns: Mapping[str, float] | None = None,
        server_port: int | None = None,
        meter: bool = False,
        keep_state: bool = False,
        fresh: bool = False,
    ) -> None:
        """`workers` pins each pool to that many workers (or the pools named in a mapping, the others to none);
        None autoscales them with the stack's policy
        (`cooldowns` overrides its cooldowns, in seconds, by field name of `ScalingPolicy`).
        `server_port` runs moto on another port than the endpoint's, for something in between (a fault proxy).
        `meter` meters every DynamoDB request at the server into `metering` (infra/local/meter.py).
        `keep_state` saves the bucket, tables and waiting messages when the cloud stops and puts them back when it
        starts (infra/local/state.py), unless `fresh`."""
        if not settings.endpoint_url or not settings.endpoint_url.startswith("http://127.0.0.1:"):
            raise ValueError(f"the local cloud binds to 127.0.0.1; endpoint {settings.endpoint_url!r} is not local")
        self.settings = settings
        self.state_dir = Path(settings.state_dir)
        self.recording = self.state_dir / "requests.jsonl" if record else None
        self.metering = self.state_dir / "dynamodb-meter.jsonl" if meter else None
        port = server_port or int(settings.endpoint_url.rsplit(":", 1)[1])
        self.server = MotoServer(port, self.state_dir / "moto.log", record_to=self.recording, meter_to=self.metering)
        self.env = {**os.environ, **settings.environment()}
        self.deployment = local_deployment(settings)
        self.pools = [WorkerSet(pool, self.env, self.state_dir, on_scale=self._desired(pool.name)) for pool in settings.topology.pools]
        self.workers = workers
        self.autoscale_interval = autoscale_interval
        self.cooldowns = dict(cooldowns or {})
        self.autoscalers: list[Autoscaler] = []
        self.producer: subprocess.Popen[bytes] | None = None
        self.events_url: str | None = None
        self.scheduler: LocalScheduler | None = None
        self.keep_state, self.fresh = keep_state, fresh
        # What was put back as the cloud started, and saved as it stopped (`dropq up` says so).
        self.restored: state.Counts | None = None
        self.saved: state.Counts | None = None
        # Set once start() has finished: a cloud that failed to start (or to put its state back) saves nothing over
        # the state it was given.
        self.started = False

    def _desired(self, pool: str) -> Callable[[int], None]:
        """Record a pool's new worker count as its ECS service's desired count, where `dropq status` reads it."""

        def record(count: int) -> None:
            try:
                ecs = self.settings.client("ecs")
                ecs.update_service(cluster=self.deployment.cluster, service=self.deployment.services[pool], desiredCount=count)
            except Exception as exc:  # the count is for people to see; workers scale regardless
                logger.warning("could not record %d workers for pool %s: %s", count, pool, exc)

        return record

    def start(self) -> LocalCloud:
        """Start the server, provision, start the producer runtime and the workers."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.server.start()
        try:
            self.events_url = provision(self._direct)
            if self.keep_state and not self.fresh and state.saved(self.settings):
                self._restore()
            if self.recording is not None:
                self.server.reset_recording()  # record what dropq does at run time, not its provisioning
            self.start_producer(self.events_url)
            self.scheduler = LocalScheduler(self.settings.topology.schedules, self.fire).start()
            if self.workers is not None:
                for workers in self.pools:
                    workers.scale_to(self.pinned(workers.pool.name) or 0)
            else:
                self.start_autoscalers()
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def start_producer(self, events_url: str) -> None:
        """Run the producer handler behind the inbox events queue (an event source mapping) and for asynchronous
        invocations (schedules), in a local Lambda runtime."""
        topology = self.settings.topology
        command = [
            sys.executable,
            "-m",
            "infra.local.lambda_runtime",
            PRODUCER_HANDLER,
            self.settings.queue_url(LOCAL_INVOCATIONS_QUEUE),
            self.settings.queue_url(topology.producer_failure_queue),
            "--retries",
            str(topology.producer_retries),
            "--inbox-url",
            events_url,
            "--batch-size",
            str(topology.inbox_events.batch_size),
            "--batching-window",
            str(topology.inbox_events.batching_window_seconds),
        ]
        self.producer = start_process(command, self.state_dir / "lambda.log", self.env)

    def pinned(self, pool: str) -> int | None:
        """How many workers the pool called `pool` is pinned to; None when pools autoscale."""
        if self.workers is None or isinstance(self.workers, int):
            return self.workers
        return self.workers.get(pool, 0)

    def invoke_producer(self, event: dict[str, Any]) -> None:
        """Invoke the producer asynchronously with `event`, through the local Lambda runtime (as EventBridge does)."""
        assert self.events_url is not None, "the cloud is not started"
        self.settings.client("sqs").send_message(QueueUrl=self.settings.queue_url(LOCAL_INVOCATIONS_QUEUE), MessageBody=json.dumps(event))

    def fire(self, schedule: Schedule, scheduled_time: datetime) -> None:
        """Fire one schedule for one period, as EventBridge Scheduler does: the producer, with the schedule payload."""
        self.invoke_producer({SCHEDULE_FIELD: schedule.name, TIME_FIELD: period_id(scheduled_time)})

    def start_autoscalers(self) -> None:
        """Scale each pool on its queues' backlog, as the stack's scaling policies do in AWS."""
        sqs = self.settings.client("sqs")
        for workers in self.pools:
            policy = replace(scaling_policy(workers.pool), **self.cooldowns)
            urls = [self.settings.queue_url(name) for name in workers.pool.queues]
            autoscaler = Autoscaler(workers, sqs, urls, policy, interval=self.autoscale_interval)
            workers.scale_to(policy.min_workers)
            self.autoscalers.append(autoscaler.start())

    def stop(self) -> None:
        """Stop everything this cloud started: the scheduler, then the workers and the producer side by side, then the
        server (after saving the state)."""
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        for autoscaler in self.autoscalers:
            autoscaler.stop()
        self.autoscalers.clear()
        # Side by side: each pool's workers may take their stop timeout, as Fargate stops services independently, and
        # the producer needs nothing of them to stop.
        stopping = [threading.Thread(target=workers.stop, name=f"stop-{workers.pool.name}") for workers in self.pools]
        stopping.append(threading.Thread(target=self._stop_producer, name="stop-producer"))
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        if self.keep_state and self.started and self.server.process is not None:
            try:
                self._settle_in_flight()
                self.saved = state.save(self._direct)
            except Exception as exc:  # stopping goes on: the state saved before stays
                logger.warning("could not save the local cloud's state in %s: %s", state.folder(self.settings), exc)
        self.server.stop()
        self.started = False

    def _settle_in_flight(self) -> None:
        """Wait until no message is in flight, RECEIVE_VISIBILITY_SECONDS and a second at most: with the workers and the
        producer stopped, one is only in a stopped worker's cut long poll, visible again that soon, and saved then."""
        sqs, direct = self._direct.client("sqs"), self._direct
        urls = [direct.queue_url(q.name) for q in direct.topology.queues]

        def in_flight() -> int:
            names = ["ApproximateNumberOfMessagesNotVisible"]
            return sum(int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"][names[0]]) for url in urls)

        deadline = time.monotonic() + RECEIVE_VISIBILITY_SECONDS + 1
        while in_flight() and time.monotonic() < deadline:
            time.sleep(0.2)

    def _stop_producer(self) -> None:
        if self.producer is not None:
            stop_process(self.producer, timeout=10)
            self.producer = None

    def _restore(self) -> None:
        """Put the saved state back with the bucket's inbox notification off, so restored files are not processed again."""
        direct = self._direct
        s3 = direct.client("s3")
        s3.put_bucket_notification_configuration(Bucket=direct.bucket, NotificationConfiguration={})
        self.restored = state.restore(direct)
        provision_bucket(s3, direct.client("sqs"), direct)
        # A notification that was in flight at the stop was not saved, nor a message delayed (a retry's): the files
        # the ledger has never seen, and those it has queued or running, are enqueued now as `dropq backfill` of the
        # inbox would, unless a message put back names them.
        events.setLevel("WARNING")
        checkpoint = Checkpoint.open(direct.state_dir, "restore: the inbox's files not yet done", restart=True)
        inbox = listed(s3, direct.bucket, direct.topology.inbox_prefix)
        ledger, sqs = ledger_for(direct), direct.client("sqs")
        progress = walk(inbox, direct, ledger, sqs, checkpoint, signer=signer_for(direct), resend_open=True, waiting=self.restored.waiting)
        self.restored.backfilled = progress.enqueued_total

    @property
    def _direct(self) -> Settings:
        """The settings that reach the server itself (not a fault proxy in front of it)."""
        return replace(self.settings, endpoint_url=self.server.endpoint_url)

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def exports(self) -> dict[str, str]:
        """The environment a shell needs to use this cloud with the aws CLI and dropq's CLI."""
        env = self.settings.environment()
        env["AWS_ENDPOINT_URL"] = self.settings.endpoint_url or ""
        return env

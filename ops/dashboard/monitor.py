"""What the dashboard shows, sampled every few seconds: the status, an hour of queue depths, an hour of throughput.

Queue depths over time come from CloudWatch for a deployed stack (SQS publishes them every minute) and
from the monitor's own samples from then on; the local cloud has no CloudWatch metrics, only the samples.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from dropq.counts import counts_for
from dropq.deployment import Deployment
from dropq.ledger import ledger_for
from dropq.ticker import Ticker
from ops.status import collect_status, throughput

logger = logging.getLogger("dropq")

HISTORY = timedelta(hours=1)
# Recent files listed.
RECENT_FILES = 50
# SQS's metrics in CloudWatch, by the field of a depth sample they fill (the DLQ's count is `dead_lettered`).
SQS_METRICS = {
    "visible": "ApproximateNumberOfMessagesVisible",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}
CLOUDWATCH_PERIOD_SECONDS = 60


def depth_sample(status: dict[str, Any]) -> dict[str, Any]:
    """One point of the queue-depth chart from a status."""
    fields = (*SQS_METRICS, "dead_lettered")
    return {"at": status["at"], "queues": {q["name"]: {f: q[f] for f in fields} for q in status["queues"]}}


def cloudwatch_depths(cloudwatch: Any, deployment: Deployment, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per-minute queue depths between `start` and `end` from SQS's CloudWatch metrics, oldest first."""
    settings = deployment.settings
    queries, fields = [], {}
    for index, spec in enumerate(settings.topology.queues):
        metrics = [(settings.physical_name(spec.name), f, m) for f, m in SQS_METRICS.items()]
        metrics.append((settings.physical_name(spec.dlq_name), "dead_lettered", SQS_METRICS["visible"]))
        for number, (queue, field, metric) in enumerate(metrics):
            query_id = f"q{index}m{number}"
            fields[query_id] = (spec.name, field)
            queries.append(
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {"Namespace": "AWS/SQS", "MetricName": metric, "Dimensions": [{"Name": "QueueName", "Value": queue}]},
                        "Period": CLOUDWATCH_PERIOD_SECONDS,
                        "Stat": "Maximum",
                    },
                }
            )
    samples: dict[datetime, dict[str, dict[str, int]]] = {}
    for page in cloudwatch.get_paginator("get_metric_data").paginate(MetricDataQueries=queries, StartTime=start, EndTime=end):
        for result in page["MetricDataResults"]:
            queue, field = fields[result["Id"]]
            for at, value in zip(result["Timestamps"], result["Values"], strict=True):
                zeros = {f: 0 for f in (*SQS_METRICS, "dead_lettered")}
                samples.setdefault(at, {}).setdefault(queue, zeros)[field] = int(value)
    return [{"at": at.astimezone(UTC).isoformat(timespec="seconds"), "queues": queues} for at, queues in sorted(samples.items())]


class Monitor(Ticker):
    """Samples a deployment every `interval` seconds; `view` is the latest status with the hour behind it."""

    def __init__(self, deployment: Deployment, interval: float = 5.0) -> None:
        super().__init__("dashboard-monitor", interval)
        self.deployment = deployment
        settings = deployment.settings
        self.sqs, self.ecs, self.s3, self.ledger = (
            settings.client("sqs"),
            settings.client("ecs"),
            settings.client("s3"),
            ledger_for(settings),
        )
        self.counts = counts_for(settings, client=self.ledger.client)
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None
        self._depths: deque[dict[str, Any]] = deque()

    def start(self) -> Monitor:
        """Fill the last hour from CloudWatch (a deployed stack), then sample in the background."""
        if self.deployment.stack is not None:
            # Aligned on the minute, CloudWatch's periods are the minutes' (and its answer is quicker).
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            try:
                self._depths.extend(cloudwatch_depths(self.deployment.settings.client("cloudwatch"), self.deployment, now - HISTORY, now))
            except ClientError as exc:  # no cloudwatch:GetMetricData: the charts start now
                logger.warning("cannot read the last hour of queue depths from CloudWatch: %s", exc)
        return super().start()

    def tick(self) -> dict[str, Any]:
        """Read the deployment once."""
        status = collect_status(self.deployment, self.sqs, self.ecs, self.ledger, recent=RECENT_FILES)
        now = datetime.now(UTC)
        # The hour's counts (one Query a day it spans), never the hour's files: a tick costs the same at any traffic.
        status["throughput"] = throughput(self.counts.minutes(now - HISTORY, now), now)
        horizon = (now - HISTORY).isoformat(timespec="seconds")
        with self._lock:
            self._latest = status
            self._depths.append(depth_sample(status))
            while self._depths and self._depths[0]["at"] < horizon:
                self._depths.popleft()
        return status

    def view(self) -> dict[str, Any]:
        """The latest status with `depths`, the queue depths over the last hour; read now if none was yet."""
        with self._lock:
            latest = self._latest
        if latest is None:
            latest = self.tick()
        with self._lock:
            return {**latest, "depths": list(self._depths)}

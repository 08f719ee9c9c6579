"""What producer and workers tell operators: one JSON line per event of a file; a file's outcome line is its metrics too.

Lines are joined across Lambda and workers by `key` and `task_id`; `state` is the file's ledger state after the
event. A file's outcome (`succeeded` or `failed`) is one line that is also an EMF record: CloudWatch Logs turns its
`_aws` directive and metric members into metrics, and bills its bytes once (logs are most of a file's fixed cost
after the ledger: BENCHMARKS.md). Lines go to the process's real stdout: a Celery worker replaces `sys.stdout` with
a proxy that logs each write as a WARNING line, and CloudWatch extracts metrics only from a log event that is a bare
JSON object. Events an operator rarely needs (a worker's `started`: the ledger has it; the producer's `enqueued` per
file: its batch's `handled` line counts it) are logged at DEBUG, off unless POWERTOOLS_LOG_LEVEL=DEBUG. Powertools and
the standard library only: the producer's Lambda bundle ships this module.

CloudWatch Logs bills every byte ingested, so a line carries each fact once. Its `message` is the event's name
(`succeeded`, `retry`, …), its other members what the event is about: a file's `key` and `etag` (the bucket is the
deployment's, in the ledger), its `state` where it differs from the event, a `reason`; an outcome's duration and
size are its metric members, one number each. No `timestamp`: CloudWatch Logs stamps each event it ingests, and an
outcome's EMF record carries its own. No `location`: each event is logged from one place, and its name says which.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from dropq.objects import ObjectRef

PRODUCER = "dropq-producer"
WORKER = "dropq-worker"
# CloudWatch namespace of the per-pipeline metrics; their dimensions are the deployment and the pipeline. Not
# `service`: every line already has that member, the logger's name (dropq-worker).
NAMESPACE = "dropq"
DEPLOYMENT, PIPELINE = "deployment", "pipeline"
DURATION, SUCCEEDED, FAILED, BYTES = "Duration", "Succeeded", "Failed", "Bytes"


def event_logger(service: str, stream: IO[str] | None = None) -> Logger:
    """A Powertools logger that writes one JSON object per line to `stream` (the real stdout by default)."""
    logger = Logger(service=service, stream=stream or sys.__stdout__)
    logger.remove_keys(["location", "timestamp"])
    # Its own handler writes the line; propagated, it would be printed again by the root logger Celery sets up.
    logging.getLogger(service).propagate = False
    return logger


def _log(
    logger: Logger, event: str, ref: ObjectRef | None, task_id: str | None, state: str | None, level: str, fields: dict[str, Any]
) -> None:
    where = {"key": ref.key, "etag": ref.etag} if ref is not None else {}
    # Powertools leaves out the fields that are None.
    extra = {**where, "task_id": task_id, "state": None if state == event else state, **fields}
    getattr(logger, level)(event, extra=extra)


def log_event(
    logger: Logger,
    event: str,
    *,
    ref: ObjectRef | None = None,
    task_id: str | None = None,
    state: str | None = None,
    level: str = "info",
    **fields: Any,
) -> None:
    """Log one event as one JSON line: what happened, to which object, in which task, leaving which ledger state.

    A file's event carries its `key`, `bucket` and `etag`; `task_id`, `state` and other fields are there when set.
    """
    _log(logger, event, ref, task_id, state, level, fields)


def deployment(prefix: str) -> str:
    """The `service` dimension of a deployment's metrics: its resource prefix without the dash ("dropq", the stack name)."""
    return prefix.rstrip("-") or NAMESPACE


def outcome_metrics(
    service: str, pipeline: str, ref: ObjectRef, task_id: str, *, succeeded: bool, duration_ms: int | None
) -> dict[str, Any]:
    """The EMF members of one finished file: Succeeded or Failed, its input's Bytes, and how long a success took.

    Each record counts what happened only (Succeeded 1 or Failed 1, not the other at 0): a minute without failures has
    no Failed datum, which the dashboard's sums and the alarms (missing data is not breaching) read as none. Failures
    are counted, not timed: files refused at once would pull the duration of real work down.
    """
    metrics = EphemeralMetrics(namespace=NAMESPACE)
    metrics.add_dimension(name=DEPLOYMENT, value=service)
    metrics.add_dimension(name=PIPELINE, value=pipeline)
    metrics.add_metric(name=SUCCEEDED if succeeded else FAILED, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=BYTES, unit=MetricUnit.Bytes, value=ref.size)
    if succeeded and duration_ms is not None:
        metrics.add_metric(name=DURATION, unit=MetricUnit.Milliseconds, value=duration_ms)
    # Searchable in the logs, not dimensions: which file and task the record is about.
    metrics.add_metadata(key="key", value=ref.key)
    metrics.add_metadata(key="task_id", value=task_id)
    record = dict(metrics.serialize_metric_set())
    # One value a metric: EMF takes a number as well as Powertools' list of floats, in fewer bytes.
    for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
        (value,) = record[metric["Name"]]
        record[metric["Name"]] = int(value) if float(value).is_integer() else value
    return record


def log_outcome(
    logger: Logger,
    service: str,
    ref: ObjectRef,
    task_id: str,
    pipeline: str,
    *,
    succeeded: bool,
    duration_ms: int | None,
    **fields: Any,
) -> None:
    """A file's final outcome: its `succeeded` or `failed` event, one line that is also its EMF metrics record."""
    state = "succeeded" if succeeded else "failed"
    metrics = outcome_metrics(service, pipeline, ref, task_id, succeeded=succeeded, duration_ms=duration_ms)
    _log(logger, state, ref, task_id, state, "info" if succeeded else "warning", {**fields, **metrics})

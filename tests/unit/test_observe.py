"""Event lines and EMF records, as CloudWatch Logs reads them: one JSON object per line."""

from __future__ import annotations

import io
import json
import logging
import uuid
from numbers import Number
from typing import Any

import pytest

from dropq.objects import ObjectRef
from dropq.observe import deployment, event_logger, log_event, log_outcome, outcome_metrics
from tasks.config import QUIET_LOGGERS, quiet_task_lines

REF = ObjectRef(bucket="dropq-local", key="incoming/holiday/ünï cødé.jpg", etag="abc123", size=4096)
# The units CloudWatch accepts: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html
UNITS = {"Milliseconds", "Count", "Bytes"}


def emf_errors(record: dict[str, Any]) -> list[str]:
    """What keeps `record` from being a valid EMF record (the spec's rules, checked one by one); empty when valid.

    https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
    """
    errors: list[str] = []
    metadata = record.get("_aws")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("Timestamp"), int):
        return ["no _aws object with an integer Timestamp (epoch milliseconds)"]
    directives = metadata.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return ["no CloudWatchMetrics directives"]
    for directive in directives:
        if not isinstance(directive.get("Namespace"), str) or not directive["Namespace"]:
            errors.append(f"namespace {directive.get('Namespace')!r}")
        for dimension_set in directive.get("Dimensions", []):
            errors += [f"dimension {name!r} is not a string member" for name in dimension_set if not isinstance(record.get(name), str)]
        for metric in directive.get("Metrics", []):
            values = record.get(metric.get("Name"))
            values = values if isinstance(values, list) else [values]
            if not values or not all(isinstance(v, Number) and not isinstance(v, bool) for v in values):
                errors.append(f"metric {metric.get('Name')!r} has no numeric value: {record.get(metric.get('Name'))!r}")
            if metric.get("Unit") not in UNITS:
                errors.append(f"metric {metric.get('Name')!r} has unit {metric.get('Unit')!r}")
    return errors


def metric_units(record: dict[str, Any]) -> dict[str, str]:
    """Metric name -> unit, from a record's (only) directive."""
    return {m["Name"]: m["Unit"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def events(stream: io.StringIO) -> Any:
    """An event logger writing to `stream` (a new service each time: Powertools keeps one handler per service name)."""
    return event_logger(f"test-{uuid.uuid4().hex[:8]}", stream)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_a_file_event_is_one_json_line_with_the_key_task_and_ledger_state(events: Any, stream: io.StringIO) -> None:
    log_event(events, "started", ref=REF, task_id="task-1", state="running", pipeline="images", queue="default", reason=None)

    (line,) = lines(stream)
    assert line == {
        "level": "INFO",
        "message": "started",
        "service": events.service,
        "key": REF.key,
        "etag": "abc123",
        "task_id": "task-1",
        "state": "running",
        "pipeline": "images",
        "queue": "default",
    }, "each fact once: no location, no timestamp (CloudWatch stamps each event), no bucket (the deployment's)"


def test_a_file_event_without_a_task_leaves_the_task_out(events: Any, stream: io.StringIO) -> None:
    log_event(events, "skipped", ref=REF, state="skipped", level="warning", reason="already running or done")

    (line,) = lines(stream)
    assert "task_id" not in line and line["level"] == "WARNING" and "state" not in line, "the state is the event's name"
    assert (line["message"], line["reason"]) == ("skipped", "already running or done")


def test_an_event_of_no_file_has_its_facts_as_members(events: Any, stream: io.StringIO) -> None:
    log_event(events, "scheduled", task_id="t", state="queued", schedule="daily-report", scheduled_time="2025-01-01T00:10:00Z")

    (line,) = lines(stream)
    assert line["message"] == "scheduled" and "key" not in line
    assert (line["task_id"], line["state"], line["schedule"], line["scheduled_time"]) == (
        "t",
        "queued",
        "daily-report",
        "2025-01-01T00:10:00Z",
    )


def test_event_lines_are_not_printed_again_by_the_root_logger(events: Any, stream: io.StringIO) -> None:
    # Given a root handler, like the one a Celery worker sets up after dropq's modules are imported
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        log_event(events, "started", ref=REF, task_id="t", state="running")
    finally:
        logging.getLogger().removeHandler(handler)
    assert len(lines(stream)) == 1 and seen == []


def test_a_success_is_a_valid_emf_record_in_the_dropq_namespace_by_deployment_and_pipeline() -> None:
    record = outcome_metrics("dropq", "images", REF, "task-1", succeeded=True, duration_ms=250)

    assert emf_errors(record) == []
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "dropq"
    assert directive["Dimensions"] == [["deployment", "pipeline"]]
    assert (record["deployment"], record["pipeline"]) == ("dropq", "images")
    assert metric_units(record) == {"Duration": "Milliseconds", "Succeeded": "Count", "Bytes": "Bytes"}, "no Failed at 0"
    assert (record["Duration"], record["Succeeded"], record["Bytes"]) == (250, 1, 4096)
    assert all(type(record[name]) is int for name in metric_units(record)), "one number a metric, not a list of floats"
    assert (record["key"], record["task_id"]) == (REF.key, "task-1"), "which file, for Logs Insights (not a dimension)"


def test_a_failure_is_counted_with_its_bytes_but_not_timed() -> None:
    record = outcome_metrics("mystack", "tables", REF, "task-2", succeeded=False, duration_ms=3)

    assert emf_errors(record) == []
    assert metric_units(record) == {"Failed": "Count", "Bytes": "Bytes"}
    assert (record["Failed"], record["Bytes"], record["deployment"]) == (1, 4096, "mystack")


def test_an_outcome_is_one_line_its_event_and_its_emf_record(events: Any, stream: io.StringIO) -> None:
    log_outcome(events, "dropq", REF, "task-3", "images", succeeded=False, duration_ms=12, reason="corrupt or truncated image")

    (line,) = lines(stream)
    assert (line["message"], line["task_id"], line["level"]) == ("failed", "task-3", "WARNING")
    assert (line["reason"], line["pipeline"], line["key"]) == ("corrupt or truncated image", "images", REF.key)
    assert emf_errors(line) == [] and line["Failed"] == 1 and line["deployment"] == "dropq"
    assert line["service"] == events.service, "the logger's own member is left as it is"


def test_a_success_line_is_valid_emf_with_its_duration_each_fact_once(events: Any, stream: io.StringIO) -> None:
    log_outcome(events, "dropq", REF, "task-4", "images", succeeded=True, duration_ms=250, outputs=3)

    (line,) = lines(stream)
    assert emf_errors(line) == [] and (line["Succeeded"], line["Duration"], line["outputs"]) == (1, 250, 3)
    assert line["message"] == "succeeded" and line["level"] == "INFO"
    assert not {"duration_ms", "state", "event", "bucket", "timestamp", "location", "Failed"} & set(line), "said elsewhere on the line"


def test_debug_events_are_off_by_default(events: Any, stream: io.StringIO) -> None:
    log_event(events, "started", ref=REF, task_id="t", state="running", level="debug")
    log_event(events, "skipped", ref=REF, state="skipped")

    assert [line["message"] for line in lines(stream)] == ["skipped"]


@pytest.mark.parametrize(("prefix", "service"), [("dropq-", "dropq"), ("my-stack-", "my-stack"), ("", "dropq")])
def test_the_deployment_dimension_is_the_deployment_prefix_without_its_dash(prefix: str, service: str) -> None:
    assert deployment(prefix) == service


def test_a_worker_logs_celerys_per_task_lines_from_warning_up_so_failures_still_show() -> None:
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    try:
        quiet_task_lines()
        for name in QUIET_LOGGERS:
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), f"{name} still logs each task at INFO"
        assert logging.getLogger("celery.app.trace").isEnabledFor(logging.ERROR), "a task's failure must still be logged"
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)

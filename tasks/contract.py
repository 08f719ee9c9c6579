"""The private parts of kombu, Celery and billiard that dropq's worker leans on, in one list, checked before it starts.

kombu's SQS transport has no public hook for what tasks/broker/ fixes (releasing given-back messages, keeping held
ones invisible, batched deletes, delays that hop, receives a stopping worker may cut), so it overrides private methods and reads
private attributes. An override of a method kombu has renamed is never called, and nothing says so: the worker
would run without the fix. Celery's prefork pool has no hook for ending an idle pool's processes at once either
(tasks/pool.py reads billiard's). `problems()` looks up each name and, for a method, the parameters dropq calls it with
or is called with; `require()` stops the worker, naming each one, when any has gone or changed. pyproject.toml
pins the three to the minor versions this list was checked on.

kombu's public `AsyncSQSConnection.delete_message_batch` is not used for acknowledgements: on an HTTP error it
raises inside the worker's event loop (its `get_object` parses the response before any callback of ours runs).
tasks/broker/acks.py sends the same request with `make_request` and parses the answer (`_on_obj_ready`) in a callback
that catches what that raises.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from importlib.metadata import version


@dataclass(frozen=True)
class Private:
    """One private name dropq relies on: where it lives, what it is, and what breaks without it."""

    owner: str  # "module" or "module:Class"
    name: str
    # A method's or function's parameters (without self), in order; None: an attribute, only looked for.
    parameters: tuple[str, ...] | None
    why: str

    @property
    def path(self) -> str:
        return f"{self.owner.replace(':', '.')}.{self.name}"


SQS_CHANNEL, SQS_QOS = "kombu.transport.SQS:Channel", "kombu.transport.SQS:QoS"
VIRTUAL_QOS = "kombu.transport.virtual.base:QoS"
VIRTUAL_CHANNEL = "kombu.transport.virtual.base:Channel"
CURL = "kombu.asynchronous.http.curl:CurlClient"
SQS_CONNECTION = "kombu.asynchronous.aws.sqs.connection:AsyncSQSConnection"
ASYNPOOL = "celery.concurrency.asynpool:AsynPool"

# The packages whose private parts are listed here, each pinned to the minor version the list was checked on.
PINNED = ("kombu", "celery", "billiard")

CONTRACT = (
    # tasks/broker/transport.py overrides these: renamed, they would silently never be called.
    Private(SQS_CHANNEL, "_restore", ("message", "unwanted_delivery_info"), "a message given back is released, not copied"),
    Private(SQS_CHANNEL, "_delete_rejected_message", ("delivery_tag",), "a rejected message goes to the dead-letter queue"),
    Private(
        SQS_CHANNEL,
        "_get_from_sqs",
        ("queue_name", "queue_url", "connection", "count", "callback"),
        "a receive hides what it brings for seconds only",
    ),
    Private(SQS_CHANNEL, "_on_messages_ready", ("queue", "qname", "messages"), "failed receives poll again; early messages hop"),
    Private(SQS_CHANNEL, "_put", ("queue", "message", "kwargs"), "countdowns wait in SQS as per-message delays"),
    Private(SQS_CHANNEL, "_schedule_queue", ("queue",), "a worker receives only when a whole batch fits"),
    Private(SQS_CHANNEL, "_loop1", ("queue", "messages_fetched"), "the next receive starts at once"),
    Private(SQS_QOS, "append", ("message", "delivery_tag"), "the keeper hears what the worker holds"),
    Private(SQS_QOS, "ack", ("delivery_tag",), "the keeper hears what the worker settled"),
    Private(SQS_QOS, "reject", ("delivery_tag", "requeue"), "the keeper hears what the worker settled"),
    # ... and calls or reads these.
    Private(SQS_CHANNEL, "_new_release_client", ("client",), "visibility changes give up within seconds"),
    Private(SQS_CHANNEL, "_has_redrive_policy", ("queue", "queue_url"), "a rejected message is released only with a DLQ"),
    Private(SQS_CHANNEL, "canonical_queue_name", ("queue_name",), "queue names as kombu keys them"),
    Private(SQS_CHANNEL, "asynsqs", ("queue",), "acknowledgements go out on the event loop's connection"),
    Private(
        SQS_CONNECTION,
        "receive_message",
        ("queue", "queue_url", "number_messages", "visibility_timeout", "attributes", "wait_time_seconds", "callback"),
        "a receive hides what it brings for seconds only",
    ),
    Private(VIRTUAL_CHANNEL, "_active_queues", None, "the queues a channel consumes"),
    Private(VIRTUAL_QOS, "_delivered", None, "the messages a worker holds (the keeper extends them)"),
    Private(VIRTUAL_QOS, "_dirty", None, "held messages already settled"),
    Private(VIRTUAL_QOS, "can_consume_max_estimate", (), "room for a whole batch"),
    Private(
        SQS_CONNECTION, "make_request", ("operation_name", "params", "queue_url", "verb", "callback", "protocol_params"), "batched deletes"
    ),
    Private(SQS_CONNECTION, "_on_obj_ready", ("parent", "operation", "response"), "a batched delete's answer, parsed"),
    Private("kombu.asynchronous.aws.sqs.connection", "_query_object_encode", ("items",), "a batched delete's query form"),
    Private("kombu.asynchronous.http", "get_client", ("hub", "kwargs"), "the event loop's HTTP client"),
    Private(CURL, "_on_hub_close", ("hub",), "a closing worker waits for its deletes in flight"),
    Private(CURL, "_process_pending_requests", (), "deletes in flight driven by hand at close"),
    Private(CURL, "_fds", None, "deletes in flight driven by hand at close"),
    Private(CURL, "_multi", None, "deletes in flight driven by hand at close"),
    Private(CURL, "_closed", None, "deletes in flight driven by hand at close"),
    # Celery.
    Private("celery.worker.state", "should_terminate", None, "a cold shutdown waits less"),
    Private("celery.worker.state", "all_total_count", None, "tasks per minute in heartbeats"),
    Private("celery.worker.state", "active_requests", None, "running tasks in heartbeats"),
    Private("celery.worker.consumer:Consumer", "on_decode_error", ("message", "exc"), "undecodable messages go to the DLQ"),
    Private("celery.worker.consumer:Consumer", "create_task_handler", ("promise",), "oversized messages go to the DLQ"),
    Private("celery.backends.dynamodb:DynamoDBBackend", "_get_client", ("access_key_id", "secret_access_key"), "waiting for DynamoDB"),
    Private("celery.backends.dynamodb:DynamoDBBackend", "_client", None, "waiting for DynamoDB"),
    # tasks/pool.py: an idle pool's processes end at once.
    Private(ASYNPOOL, "_stop_task_handler", ("task_handler",), "an idle pool's processes are told to stop at once"),
    Private(ASYNPOOL, "_task_handler", None, "an idle pool's processes are told to stop at once"),
    Private(ASYNPOOL, "_result_handler", None, "an idle pool's processes end when they say they are done"),
    Private(ASYNPOOL, "_cache", None, "a pool is stopped early only when it runs nothing"),
    Private(ASYNPOOL, "_state", None, "a pool is stopped early only when it runs nothing"),
    Private(ASYNPOOL, "_pool", None, "an idle pool's processes end when they say they are done"),
    Private("billiard.pool:ResultHandler", "on_state_change", None, "an idle pool's processes end when they say they are done"),
    Private("billiard.pool:Worker", "outq", None, "an idle pool's processes end when they say they are done"),
    Private("billiard.pool", "DEATH", None, "an idle pool's processes end when they say they are done"),
)


def _resolve(owner: str) -> object:
    module, _, cls = owner.partition(":")
    found: object = importlib.import_module(module)
    return getattr(found, cls) if cls else found


def _has_attribute(owner: object, name: str) -> bool:
    """Whether a class or module has `name`, as a class or module attribute or one its code sets on instances."""
    if hasattr(owner, name):
        return True
    if inspect.isclass(owner):
        return any(f"self.{name}" in inspect.getsource(cls) for cls in owner.__mro__ if cls.__module__.split(".")[0] in PINNED)
    return False


def problem(private: Private) -> str | None:
    """What has changed of one private name, or None when it is as dropq expects."""
    try:
        owner = _resolve(private.owner)
    except (ImportError, AttributeError) as exc:
        return f"{private.owner.replace(':', '.')} cannot be imported ({exc})"
    if private.parameters is None:
        return None if _has_attribute(owner, private.name) else f"{private.path} is gone"
    found = getattr(owner, private.name, None)
    if not callable(found):
        return f"{private.path} is gone"
    names = tuple(p for p in inspect.signature(found).parameters if p != "self")
    if names != private.parameters:
        return f"{private.path} takes ({', '.join(names)}), not ({', '.join(private.parameters)})"
    return None


def problems() -> list[str]:
    """Every private name that is gone or changed, each with what it is for."""
    return [f"{found} (needed so that {private.why})" for private in CONTRACT if (found := problem(private)) is not None]


def require() -> None:
    """Stop here, naming what has changed, unless every private name dropq relies on is as expected."""
    found = problems()
    if found:
        installed = ", ".join(f"{package} {version(package)}" for package in PINNED)
        raise RuntimeError(
            f"dropq's worker cannot run on {installed}: it relies on private parts of them that have changed, and would "
            "run without its fixes: " + "; ".join(found) + ". Install the versions pyproject.toml pins."
        )

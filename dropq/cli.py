"""The `dropq` command: run the local cloud, drop files, see what happened."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from dropq.errors import ConfigError
from dropq.settings import LOCAL_PORT, Settings, load_settings, local_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def _reaching(settings: Settings) -> Iterator[None]:
    """Turn "nothing listens there" into a sentence that says what to do."""
    from botocore.exceptions import EndpointConnectionError

    try:
        yield
    except EndpointConnectionError as exc:
        where = settings.endpoint_url or f"AWS in {settings.region}"
        hint = " Is `dropq up` running, and DROPQ_ENDPOINT_URL set to its endpoint?" if settings.is_local else ""
        raise click.ClickException(f"cannot reach {where}.{hint}") from exc


@click.group()
def main() -> None:
    """dropq: drop files in S3, Celery workers on SQS process them."""


@main.command()
@click.option("--port", default=LOCAL_PORT, show_default=True, help="Port of the local AWS endpoint (moto) on 127.0.0.1.")
@click.option(
    "--workers", type=click.IntRange(min=0), default=None, help="Pin each pool to this many workers (default: autoscale on queue backlog)."
)
@click.option("--state-dir", default=".dropq", show_default=True, type=click.Path(file_okay=False), help="Where logs live.")
def up(port: int, workers: int | None, state_dir: str) -> None:
    """Start dropq locally on an embedded moto cloud, in the foreground until Ctrl-C."""
    from infra.local.cloud import LocalCloud

    settings = local_settings(port=port, state_dir=state_dir)
    cloud = LocalCloud(settings, workers=workers)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"starting the local cloud on {settings.endpoint_url} (logs in {state_dir}/) ...")
    cloud.start()
    try:
        inbox = f"s3://{settings.bucket}/{settings.topology.inbox_prefix}"
        click.echo(f"dropq is up.\n  endpoint: {settings.endpoint_url}\n  bucket:   {settings.bucket}\n  inbox:    {inbox}")
        click.echo(f"  outputs:  s3://{settings.bucket}/{settings.topology.output_prefix}")
        pools = ", ".join(f"{p.name} {p.min_workers}..{p.max_workers}" for p in settings.topology.pools)
        click.echo(f"  workers:  {f'{workers} per pool' if workers is not None else f'autoscaled on queue backlog ({pools})'}")
        click.echo("\nIn another shell:")
        for name, value in cloud.exports().items():
            click.echo(f"export {name}={value}")
        click.echo(f"aws --endpoint-url {settings.endpoint_url} s3 cp photo.jpg {inbox}\ndropq status\n\nCtrl-C stops everything.", nl=True)
        sys.stdout.flush()
        stop.wait()
    finally:
        click.echo("stopping ...")
        cloud.stop()
        click.echo("stopped.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--limit", default=20, show_default=True, help="How many recent files to show.")
def status(as_json: bool, limit: int) -> None:
    """Show queues, workers and recent files."""
    from dropq.ledger import ledger_for
    from dropq.status import collect_status, render_status

    settings = _settings()
    with _reaching(settings):
        data = collect_status(settings, settings.client("sqs"), ledger_for(settings), recent=limit)
    click.echo(json.dumps(data, indent=2, ensure_ascii=False) if as_json else render_status(data))


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prefix", default="", help="A folder below the inbox to put the files in (e.g. 'urgent/').")
def put(files: tuple[Path, ...], prefix: str) -> None:
    """Upload FILES to the inbox, which triggers their processing."""
    settings = _settings()
    s3 = settings.client("s3")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    for path in files:
        key = f"{settings.topology.inbox_prefix}{prefix}{path.name}"
        with _reaching(settings):
            s3.upload_file(str(path), settings.bucket, key)
        click.echo(f"s3://{settings.bucket}/{key}")


@main.group()
def schedule() -> None:
    """Periodic tasks: EventBridge Scheduler (or `dropq up`) fires them; each period runs once."""


@schedule.command(name="list")
def schedule_list() -> None:
    """Show the topology's schedules."""
    settings = _settings()
    for entry in settings.topology.schedules:
        click.echo(f"{entry.name:<16} {entry.expression:<24} {entry.task} on {settings.topology.schedule(entry.name).queue}")


@schedule.command(name="run")
@click.argument("name")
def schedule_run(name: str) -> None:
    """Run the schedule NAME now (a period of its own: the current second)."""
    from datetime import UTC, datetime

    from dropq.signing import signer_for
    from lambdas.producer.schedules import Firing, enqueue_run, period_id

    settings = _settings()
    known = [s.name for s in settings.topology.schedules]
    if name not in known:
        raise click.BadParameter(f"no schedule {name!r}; known: {', '.join(known)}", param_hint="NAME")
    firing = Firing(schedule=name, scheduled_time=period_id(datetime.now(UTC)))
    with _reaching(settings):
        task_id = enqueue_run(firing, settings, settings.client("sqs"), signer_for(settings))
    click.echo(f"enqueued {settings.topology.schedule(name).task} for {firing.scheduled_time} (task {task_id})")


@main.group()
def dlq() -> None:
    """Dead-letter queues: messages that could not be run after maxReceiveCount receives."""


def _dead_letter_queues(settings: Settings, queue: str | None) -> list[tuple[str, str, str]]:
    """(queue, its DLQ's URL, its URL) for one queue of the topology, or all of them."""
    queues = settings.topology.queues
    if queue is not None:
        if queue not in settings.topology.queue_names:
            raise click.BadParameter(f"no queue {queue!r}; known: {', '.join(sorted(settings.topology.queue_names))}", param_hint="--queue")
        queues = tuple(q for q in queues if q.name == queue)
    return [(q.name, settings.queue_url(q.dlq_name), settings.queue_url(q.name)) for q in queues]


QUEUE_OPTION = click.option("--queue", default=None, help="The queue whose dead-letter queue to use (default: every queue).")


@dlq.command(name="list")
@QUEUE_OPTION
@click.option("--limit", default=100, show_default=True, help="How many messages to show per queue.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def dlq_list(queue: str | None, limit: int, as_json: bool) -> None:
    """Show the messages in dead-letter queues (they stay there)."""
    from dropq import dlq as dead_letters

    settings = _settings()
    sqs = settings.client("sqs")
    with _reaching(settings):
        found = {name: dead_letters.peek(sqs, url, limit) for name, url, _ in _dead_letter_queues(settings, queue)}
    if as_json:
        click.echo(json.dumps({name: [m.to_dict() for m in letters] for name, letters in found.items()}, indent=2, ensure_ascii=False))
        return
    for name, letters in found.items():
        click.echo(f"{settings.physical_name(name)}-dlq: {len(letters)} message(s)\n{dead_letters.render(letters)}")


@dlq.command()
@QUEUE_OPTION
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Move at most this many messages per queue.")
def redrive(queue: str | None, limit: int | None) -> None:
    """Move dead letters back to their queue, to be processed again."""
    from dropq import dlq as dead_letters

    settings = _settings()
    sqs = settings.client("sqs")
    for name, dlq_url, queue_url in _dead_letter_queues(settings, queue):
        with _reaching(settings):
            moved = dead_letters.redrive(sqs, dlq_url, queue_url, limit)
        click.echo(f"{settings.physical_name(name)}: {moved} message(s) moved back from its dead-letter queue")


@dlq.command()
@QUEUE_OPTION
@click.confirmation_option(prompt="Delete every message in the dead-letter queue(s)? They cannot be recovered.")
def purge(queue: str | None) -> None:
    """Delete every message in dead-letter queues."""
    from dropq import dlq as dead_letters

    settings = _settings()
    sqs = settings.client("sqs")
    for name, dlq_url, _ in _dead_letter_queues(settings, queue):
        with _reaching(settings):
            deleted = dead_letters.purge(sqs, dlq_url)
        click.echo(f"{settings.physical_name(name)}-dlq: {deleted} message(s) deleted")


if __name__ == "__main__":
    main()

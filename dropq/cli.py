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


if __name__ == "__main__":
    main()

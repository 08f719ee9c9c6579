"""The `dropq` command: run the local cloud, drop files, see what happened, act on it; locally or on a stack (`--stack`)."""

from __future__ import annotations

import faulthandler
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from dropq.deployment import Deployment, from_stack, local_deployment
from dropq.errors import ActionError, ConfigError
from dropq.ledger import iso
from dropq.settings import (
    DASHBOARD_PORT,
    DEFAULT_REGION,
    ENDPOINT_URL,
    LOCAL_ENDPOINT,
    LOCAL_PORT,
    REGION,
    VARIABLES,
    Settings,
    load_settings,
    local_settings,
    missing_for_aws,
    pipeline_modules,
    reference,
    webhook_variable,
)
from dropq.signals import StopRequest
from ops.finding import PAGE_SIZE

STACK_VARIABLE = "DROPQ_STACK"
DASHBOARD_TOKEN = "DROPQ_DASHBOARD_TOKEN"
# The CLI's own variables, documented with the settings (SETTINGS.md).
CLI_VARIABLES = (
    (STACK_VARIABLE, "a stack name", "", "The CLI's `--stack`: operate this CloudFormation stack instead of the local cloud."),
    (DASHBOARD_TOKEN, "any text", "", "`dropq dashboard --token`: the token its API calls need (made up beyond loopback)."),
)
# Files `dropq put` uploads at once.
UPLOAD_THREADS = 8
# `dropq files` and `dropq retry --state`: the period they look back over unless --since says.
DEFAULT_SINCE = "1d"
# Files a bulk retry skipped that it names one by one.
SKIPS_SHOWN = 10


def _deployment() -> Deployment:
    """The deployment the command operates: the stack named by --stack (or DROPQ_STACK), else the local cloud."""
    stack = click.get_current_context().find_root().params.get("stack")
    try:
        if stack is None:
            # The local cloud, at its endpoint unless the environment names another one.
            return local_deployment(load_settings({ENDPOINT_URL: LOCAL_ENDPOINT, **os.environ}))
        # A stack lives in AWS, unless DROPQ_ENDPOINT_URL names another endpoint (a moto server in the tests),
        # in the region of the environment or else of the AWS profile.
        environ = {**os.environ, ENDPOINT_URL: os.environ.get(ENDPOINT_URL, "")}
        if not (environ.get(REGION) or environ.get(DEFAULT_REGION)):
            import boto3

            environ[REGION] = boto3.Session().region_name or ""
        settings = load_settings(environ)
        with _reaching(settings):
            return from_stack(stack, settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _settings() -> Settings:
    return _deployment().settings


@contextmanager
def _reaching(settings: Settings) -> Iterator[None]:
    """Turn "nothing listens there" and refused actions into a sentence that says what to do."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    try:
        yield
    except EndpointConnectionError as exc:
        where = settings.endpoint_url or f"AWS in {settings.region}"
        hint = " Is `dropq up` running, and DROPQ_ENDPOINT_URL set to its endpoint?" if settings.is_local else ""
        raise click.ClickException(f"cannot reach {where}.{hint}") from exc
    except NoCredentialsError as exc:
        raise click.ClickException(f"no AWS credentials for {settings.region}: set AWS_PROFILE or run `aws configure`") from exc
    except ClientError as exc:  # access denied, throttled: AWS's own words
        error = exc.response.get("Error", {})
        raise click.ClickException(f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message', '')}") from exc
    except ActionError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
@click.option(
    "--stack",
    envvar=STACK_VARIABLE,
    default=None,
    help="Operate the CloudFormation stack of this name (default: the local cloud).",
)
def main(stack: str | None) -> None:
    """dropq: drop files in S3, Celery workers on SQS process them."""


@main.command()
@click.option("--port", default=LOCAL_PORT, show_default=True, help="Port of the local AWS endpoint (moto) on 127.0.0.1.")
@click.option(
    "--workers", type=click.IntRange(min=0), default=None, help="Pin each pool to this many workers (default: autoscale on queue backlog)."
)
@click.option("--state-dir", default=".dropq", show_default=True, type=click.Path(file_okay=False), help="Where logs live.")
@click.option("--dashboard-port", default=DASHBOARD_PORT, show_default=True, help="Port of the dashboard on 127.0.0.1.")
@click.option("--fresh", is_flag=True, help="Start with an empty bucket, ledger and queues instead of the state the last run left.")
def up(port: int, workers: int | None, state_dir: str, dashboard_port: int, fresh: bool) -> None:
    """Start dropq locally on an embedded moto cloud, with its dashboard, in the foreground until Ctrl-C."""
    from infra.local.cloud import LocalCloud
    from ops.dashboard.server import Dashboard

    if click.get_current_context().find_root().params.get("stack"):
        raise click.UsageError("`dropq up` runs the local cloud; --stack names a deployed one")
    from infra.local.server import port_is_free

    # Both ports checked before anything starts: a clash is one line, and nothing is left running or half made.
    if port == dashboard_port:
        raise click.ClickException(f"--port and --dashboard-port are both {port}: give them different ports")
    for option, number in (("--port", port), ("--dashboard-port", dashboard_port)):
        if not port_is_free(number):
            raise click.ClickException(
                f"port {number} on 127.0.0.1 is in use ({option}): stop what uses it, or choose another "
                f'(dropq up {option} {number + 1}, or make run ARGS="{option} {number + 1}")'
            )
    try:
        # Your own pipelines' modules (DROPQ_PIPELINE_MODULES) reach the producer and every worker.
        settings = local_settings(port=port, state_dir=state_dir, pipeline_modules=pipeline_modules(os.environ))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    cloud = LocalCloud(settings, workers=workers, keep_state=True, fresh=fresh)
    stop = StopRequest()
    stop.install()
    # `kill -USR1` prints where each thread of `dropq up` is (as a Celery worker logs its threads on SIGUSR1).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    click.echo(f"starting the local cloud on {settings.endpoint_url} (logs in {state_dir}/) ...")
    cloud.start()
    if cloud.restored is not None:
        click.echo(f"  put back what the last run left in {state_dir}/state/: {cloud.restored} (--fresh starts empty)")
    dashboard = None
    try:
        try:
            dashboard = Dashboard(cloud.deployment, port=dashboard_port).start()
        except ConfigError as exc:
            raise click.ClickException(f"{exc} (--dashboard-port)") from exc
        inbox = f"s3://{settings.bucket}/{settings.topology.inbox_prefix}"
        click.echo(f"dropq is up.\n  endpoint: {settings.endpoint_url}\n  bucket:   {settings.bucket}\n  inbox:    {inbox}")
        click.echo(f"  outputs:  s3://{settings.bucket}/{settings.topology.output_prefix}")
        pools = ", ".join(f"{p.name} {p.min_workers}..{p.max_workers}" for p in settings.topology.pools)
        click.echo(f"  workers:  {f'{workers} per pool' if workers is not None else f'autoscaled on queue backlog ({pools})'}")
        click.echo(f"  dashboard: {dashboard.url}")
        click.echo("\nIn another shell:")
        for name, value in cloud.exports().items():
            click.echo(f"export {name}={value}")
        click.echo(f"aws --endpoint-url {settings.endpoint_url} s3 cp photo.jpg {inbox}\ndropq status\n\nCtrl-C stops everything.", nl=True)
        sys.stdout.flush()
        stop.wait()
    finally:
        click.echo("stopping ...")
        if dashboard is not None:
            dashboard.stop()
        cloud.stop()
        if cloud.saved is not None:
            click.echo(f"saved {cloud.saved} in {state_dir}/state/ for the next `dropq up`")
        click.echo("stopped.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--limit", default=20, show_default=True, help="How many recent files to show.")
@click.option("--watch", is_flag=True, help="Refresh in place until Ctrl-C.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds between refreshes with --watch.")
def status(as_json: bool, limit: int, watch: bool, interval: float) -> None:
    """Show queues, worker pools and recent files."""
    from dropq.ledger import ledger_for
    from ops.status import collect_status, render_status

    deployment = _deployment()
    settings = deployment.settings
    sqs, ecs, ledger = settings.client("sqs"), settings.client("ecs"), ledger_for(settings)
    # Watching, a first Ctrl-C stops once the reading in progress is done, a second one at once: a KeyboardInterrupt
    # raised in the middle of a reading (its shards are read side by side) could leave a lock held that the readers
    # wait for.
    stop = StopRequest()
    if watch:
        stop.install((signal.SIGINT,), second_interrupts=True)
    try:
        while not stop.is_set():
            with _reaching(settings):
                data = collect_status(deployment, sqs, ecs, ledger, recent=limit)
            text = json.dumps(data, indent=2, ensure_ascii=False) if as_json else render_status(data)
            if not watch:
                click.echo(text)
                return
            click.clear()
            click.echo(f"{text}\n\nevery {interval:g}s; Ctrl-C stops")
            stop.wait(interval)
    except KeyboardInterrupt:
        return


def _uploads(paths: tuple[Path, ...], folder: str) -> dict[str, Path]:
    """Each file to upload by its key: a file by its name, a directory's files by their paths below it, the directory's
    name first (`dropq put photos` puts photos/a.jpg at <folder>photos/a.jpg); two files for one key are refused."""
    keys: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            found = [(f"{path.resolve().name}/{f.relative_to(path).as_posix()}", f) for f in sorted(path.rglob("*")) if f.is_file()]
            if not found:
                raise click.ClickException(f"{path} holds no file to upload")
        else:
            found = [(path.name, path)]
        for relative, file in found:
            key = folder + relative
            if key in keys and keys[key].resolve() != file.resolve():
                raise click.ClickException(
                    f"{keys[key]} and {file} would both be uploaded to {key}: put their folder instead, or each with its own --prefix"
                )
            keys[key] = file
    return keys


def _s3_etag(path: Path) -> str:
    """The ETag S3 gives `path` uploaded by boto3's upload_file: its MD5, or past the multipart threshold (8 MiB parts)
    the MD5 of its parts' MD5s and their count."""
    import hashlib

    from boto3.s3.transfer import TransferConfig

    from dropq.objects import parts_etag

    config = TransferConfig()
    with path.open("rb") as data:
        if path.stat().st_size < config.multipart_threshold:
            return hashlib.md5(data.read(), usedforsecurity=False).hexdigest()
        return parts_etag(iter(lambda: data.read(config.multipart_chunksize), b""))


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--prefix", default="", help="A folder below the inbox to put the files in (e.g. 'urgent/').")
def put(files: tuple[Path, ...], prefix: str) -> None:
    """Upload FILES (and the files below each directory given, with their paths) to the inbox, which triggers their
    processing; a file the ledger has already processed with the same content is not uploaded again."""
    from dropq.ledger import SUCCEEDED, file_pk, ledger_for

    settings = _settings()
    s3 = settings.client("s3")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    folder = f"{settings.topology.inbox_prefix}{prefix}"
    keys = _uploads(files, folder)
    etags = {key: _s3_etag(path) for key, path in keys.items()}
    with _reaching(settings):
        known = ledger_for(settings).entries((file_pk(settings.bucket, key), etag) for key, etag in etags.items())
    done = {entry["key"] for entry in known if entry.get("state") == SUCCEEDED}
    for key in sorted(done):
        click.echo(
            f"s3://{settings.bucket}/{key}: already processed (same content); `dropq reprocess` or `dropq retry --force` does it again"
        )
    todo = {key: path for key, path in keys.items() if key not in done}
    if len(todo) == 1 and len(keys) == 1:
        ((key, path),) = todo.items()
        with _reaching(settings):
            s3.upload_file(str(path), settings.bucket, key)
        click.echo(f"s3://{settings.bucket}/{key}")
        return
    if not todo:
        return
    sizes = {key: path.stat().st_size for key, path in todo.items()}
    with _reaching(settings), ThreadPoolExecutor(UPLOAD_THREADS) as uploads:
        pending = {uploads.submit(s3.upload_file, str(path), settings.bucket, key): key for key, path in todo.items()}
        with click.progressbar(length=sum(sizes.values()), label=f"uploading {len(todo)} files", show_pos=False) as bar:
            for finished in as_completed(pending):
                finished.result()
                bar.update(sizes[pending[finished]])
    click.echo(f"{len(todo)} files uploaded to s3://{settings.bucket}/{folder}")


def _when(option: str, text: str) -> datetime:
    """--since as a moment, or a one-line error naming it."""
    from ops.finding import parse_since

    try:
        return parse_since(text, option=option)
    except ActionError as exc:
        raise click.ClickException(str(exc)) from None


def _checked(state: str | None = None, limit: int | None = None) -> None:
    """A one-line error naming a --state that is not one of the ledger's states, or a --limit out of range."""
    from ops.finding import check_limit, check_state

    try:
        check_state(state)
        if limit is not None:
            check_limit(limit)
    except ActionError as exc:
        raise click.ClickException(str(exc)) from None


def _pipeline(settings: Settings, pipeline: str | None) -> None:
    """A one-line error naming a --pipeline that no route of the topology names."""
    known = sorted({route.pipeline for route in settings.topology.routes})
    if pipeline is not None and pipeline not in known:
        raise click.ClickException(f"--pipeline {pipeline!r} is no pipeline of this deployment's routes; known: {', '.join(known)}")


def _bulk_retry(settings: Settings, state: str, since: str, prefix: str | None, pipeline: str | None, yes: bool) -> None:
    """`dropq retry --state failed ...`: every matching failure, after a confirmation that states the count."""
    from dropq.ledger import FAILED, ledger_for
    from dropq.signing import signer_for
    from ops.finding import every_match
    from ops.retry import retry_files

    if state != FAILED:
        raise click.ClickException(f"--state {state!r}: only failed files are retried; give --state failed")
    moment = _when("--since", since)
    _pipeline(settings, pipeline)
    ledger = ledger_for(settings)
    with _reaching(settings):
        found = every_match(ledger, moment, FAILED, prefix=prefix, pipeline=pipeline)
    scope = f"since {iso(moment)}" + (f" below {prefix}" if prefix else "") + (f" in {pipeline}" if pipeline else "")
    if not found:
        click.echo(f"no failed files {scope}: nothing to retry")
        return
    count = len(found)
    if not yes:
        click.confirm(f"{count} failed file{'s match' if count != 1 else ' matches'} ({scope}); retry them?", abort=True)
    keys = [entry["key"] for entry in found]
    with _reaching(settings), click.progressbar(length=count, label=f"retrying {count} files") as bar:
        outcome = retry_files(keys, settings, ledger, settings.client("sqs"), signer_for(settings), done=lambda _: bar.update(1))
    click.echo(f"retried {len(outcome.queued)} of {count} files; skipped {len(outcome.skipped)} that are no longer failed")
    for key, reason in sorted(outcome.skipped.items())[:SKIPS_SHOWN]:
        click.echo(f"  skipped {key}: {reason}")
    if len(outcome.skipped) > SKIPS_SHOWN:
        click.echo(f"  ... and {len(outcome.skipped) - SKIPS_SHOWN} more (`dropq file KEY` tells how each is now)")


STATE_HELP = "One of the ledger's states: queued, running, succeeded, failed."
SINCE_HELP = "From when: 90s, 30m, 1h, 2d back from now, or an ISO time (UTC unless it says)."


@main.command()
@click.argument("key", required=False)
@click.option("--state", default=None, help="Retry every file in this state (only `failed`) instead of KEY.")
@click.option("--since", default=DEFAULT_SINCE, show_default=True, help=f"With --state: files failed since then. {SINCE_HELP}")
@click.option("--prefix", default=None, help="With --state: only keys that start with this (e.g. incoming/urgent/).")
@click.option("--pipeline", default=None, help="With --state: only files of this pipeline.")
@click.option("--yes", is_flag=True, help="With --state: retry without asking first.")
@click.option("--force", is_flag=True, help="With KEY: process it again even if it succeeded (its new outputs replace the old).")
def retry(key: str | None, state: str | None, since: str, prefix: str | None, pipeline: str | None, yes: bool, force: bool) -> None:
    """Process the failed file KEY again (its key in the bucket, e.g. incoming/photo.jpg), or every failed file that
    --state failed [--since --prefix --pipeline] selects, after a confirmation. A KEY queued, or running with its lease
    run out, has its message sent again (it may be gone: dead-lettered, expired, or its send cut short)."""
    from dropq.ledger import ledger_for
    from dropq.signing import signer_for
    from ops.retry import retry_file

    ctx = click.get_current_context()
    selecting = [f"--{name}" for name in ("since", "prefix", "pipeline") if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
    if key is not None and state is not None:
        raise click.ClickException(f"give KEY ({key}) or --state {state}, not both: KEY retries one file, --state many")
    if key is None and state is None:
        raise click.ClickException("give KEY (e.g. incoming/photo.jpg), or --state failed [--since 1h] to retry many")
    if force and key is None:
        raise click.ClickException("--force processes one file again: give its KEY (`dropq reprocess` redoes many)")
    if key is not None and selecting:
        raise click.ClickException(f"{', '.join(selecting)} select files with --state failed; KEY ({key}) names one already")
    if state is not None:
        _checked(state)
        _bulk_retry(_settings(), state, since, prefix, pipeline, yes)
        return
    assert key is not None
    settings = _settings()
    with _reaching(settings):
        # One file named: a queued one's message is sent again, in case it is gone.
        item = retry_file(
            key, settings, ledger_for(settings), settings.client("sqs"), signer_for(settings), force=force, resend_queued=True
        )
    click.echo(f"{key}: queued again on {settings.physical_name(item.queue)} (task {item.task_id})")


@main.command(name="file")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def file_(key: str, as_json: bool) -> None:
    """Show every version of the file KEY: state, pipeline, attempts, outputs, failure, webhook; or waiting for a worker."""
    from dropq.ledger import ledger_for
    from ops.finding import file_history, render_history

    settings = _settings()
    with _reaching(settings):
        versions = file_history(ledger_for(settings), settings.bucket, key, settings.client("s3"), settings.topology)
    if as_json:
        click.echo(json.dumps({"bucket": settings.bucket, "key": key, "versions": versions}, indent=2, ensure_ascii=False))
    else:
        click.echo(render_history(settings.bucket, key, versions))


@main.command()
@click.option("--state", default=None, help=f"Only files in this state (default: any). {STATE_HELP}")
@click.option("--since", default=DEFAULT_SINCE, show_default=True, help=f"Failed (--state failed), else entered since then. {SINCE_HELP}")
@click.option("--prefix", default=None, help="Only keys that start with this (e.g. incoming/urgent/).")
@click.option("--pipeline", default=None, help="Only files of this pipeline.")
@click.option("--limit", default=PAGE_SIZE, show_default=True, help="Files per page.")
@click.option("--page", default=None, metavar="TOKEN", help="The page a listing before named (its `next page:` line).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def files(state: str | None, since: str, prefix: str | None, pipeline: str | None, limit: int, page: str | None, as_json: bool) -> None:
    """List files newest first, by state, time, key prefix and pipeline, a page at a time."""
    from dropq.ledger import ledger_for
    from ops.finding import find_files, render_page, summary

    _checked(state, limit)
    moment = _when("--since", since)
    settings = _settings()
    _pipeline(settings, pipeline)
    with _reaching(settings):
        found = find_files(ledger_for(settings), moment, state, prefix, pipeline, limit=limit, page=page)
    listed = [summary(entry) for entry in found.files]
    if as_json:
        data = {"files": listed, "next_page": found.next_page, "examined": found.examined, "since": iso(moment)}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    what = f"{state} files" if state else "files"
    scope = f"since {iso(moment)}" + (f" below {prefix}" if prefix else "") + (f" in {pipeline}" if pipeline else "")
    if listed:
        click.echo(render_page(listed, state))
    if found.next_page is None:
        click.echo(f"{len(listed)} {what} {scope}" + ("" if page is None else " on this page; no more"))
        return
    short = f"; read back to {found.reached} ({found.examined} entries), more may match" if len(listed) < limit else ""
    click.echo(f"{len(listed)} {what} {scope} on this page{short}")
    command = ["dropq", *_stack_args(), "files"]
    for option, value in (("--state", state), ("--since", iso(moment)), ("--prefix", prefix), ("--pipeline", pipeline)):
        if value is not None:
            command += [option, value]
    if limit != PAGE_SIZE:
        command += ["--limit", str(limit)]
    click.echo(f"next page: {shlex.join([*command, '--page', found.next_page])}")


def _target(settings: Settings, where: str) -> str:
    """The key prefix of `[s3://BUCKET/]PREFIX`, checked: the deployment's bucket, and below its inbox."""
    inbox = settings.topology.inbox_prefix
    prefix = where
    if where.startswith("s3://"):
        bucket, _, prefix = where[len("s3://") :].partition("/")
        if bucket != settings.bucket:
            raise click.ClickException(
                f"{where}: bucket {bucket!r} is not this deployment's ({settings.bucket}); its workers read only that one"
            )
    prefix = prefix or inbox
    if not prefix.startswith(inbox):
        raise click.ClickException(f"prefix {prefix!r} is outside the inbox {inbox!r}: only files below it are processed")
    return prefix


def _walked(settings: Settings, job: str, pages: Any, restart: bool, rate: float | None, dry_run: bool, reprocess: Any = None) -> None:
    """Run a backfill's or a reprocessing's walk with a progress line and a checkpoint; print its summary."""
    from dropq.backfill import Checkpoint, Progress, skipped_summary, walk
    from dropq.enqueue import events
    from dropq.ledger import ledger_for
    from dropq.signing import signer_for

    # The producer's line per enqueued file is for the Lambda's logs; here the summary says it.
    events.setLevel("WARNING")
    checkpoint = Checkpoint.open(settings.state_dir, job, restart=restart or dry_run)
    if checkpoint.resumed:
        click.echo(
            f"carrying on after {checkpoint.position} ({checkpoint.progress.enqueued_total:,} enqueued so far); --restart starts over"
        )
    started = time.monotonic()

    def shown(progress: Progress) -> None:
        rate_now = progress.enqueued_total / max(time.monotonic() - started, 1e-6)
        line = f"listed {progress.listed:,} · {'would enqueue' if dry_run else 'enqueued'} {progress.enqueued_total:,}"
        click.echo(f"\r{line} · skipped {sum(progress.skipped.values()):,} · {rate_now:,.0f}/s ", nl=False, err=True)

    # A first Ctrl-C stops the walk once the chunk it is sending is sent (nothing written and not sent); a second one at once.
    stop = StopRequest()
    restore = stop.install(
        (signal.SIGINT,),
        second_interrupts=True,
        saying="\nstopping once the files being enqueued are sent (Ctrl-C again stops at once) ...",
    )
    try:
        with _reaching(settings):
            progress = walk(
                pages(checkpoint.position),
                settings,
                ledger_for(settings),
                settings.client("sqs"),
                checkpoint,
                signer=signer_for(settings),
                rate=rate,
                dry_run=dry_run,
                reprocess=reprocess,
                shown=shown,
                stop=stop,
            )
    except KeyboardInterrupt:
        click.echo("", err=True)
        raise click.ClickException(
            f"stopped after {checkpoint.position or 'the first page'} ({checkpoint.progress.enqueued_total:,} enqueued); "
            "run the same command again to carry on"
        ) from None
    except ActionError as exc:
        click.echo("", err=True)
        raise click.ClickException(str(exc)) from None
    finally:
        restore()
    click.echo("", err=True)
    verb = "would enqueue" if dry_run else "enqueued"
    click.echo(f"{job}: listed {progress.listed:,}, {verb} {progress.enqueued_total:,}, skipped {skipped_summary(progress)}")
    for where, count in sorted(progress.enqueued.items()):
        click.echo(f"  {count:,} {where}")
    if progress.ignored:
        click.echo(f"  ({progress.ignored:,} keys are folders or outside the inbox)")
    if progress.listed == 0:
        click.echo("nothing matched: is the prefix right? (keys look like incoming/photos/a.jpg)")


RATE_HELP = "At most this many files a second (default: as fast as it goes)."


@main.command()
@click.argument("where", metavar="[s3://BUCKET/]PREFIX", required=False)
@click.option(
    "--inventory", default=None, metavar="MANIFEST", help="An S3 Inventory's manifest.json (s3://... or a file) instead of listing."
)
@click.option("--rate", type=click.FloatRange(min=0.1), default=None, help=RATE_HELP)
@click.option("--dry-run", is_flag=True, help="Count what would be enqueued, per pipeline and queue, and enqueue nothing.")
@click.option("--restart", is_flag=True, help="Start from the top instead of carrying on from the last run's checkpoint.")
@click.option(
    "--page-size", type=click.IntRange(1, 1000), default=1000, show_default=True, help="Keys listed, and checkpointed, at a time."
)
def backfill(where: str | None, inventory: str | None, rate: float | None, dry_run: bool, restart: bool, page_size: int) -> None:
    """Enqueue the files already below PREFIX (default: the inbox) that the ledger has never seen: listed page by
    page, resumable, each file once however often it runs."""
    from dropq.backfill import inventoried, listed

    settings = _settings()
    prefix = _target(settings, where or "")
    s3 = settings.client("s3")
    if inventory:
        job = f"backfill s3://{settings.bucket}/{prefix} from {inventory}"
        _walked(settings, job, lambda after: inventoried(s3, inventory, prefix, after, settings.bucket), restart, rate, dry_run)
    else:
        job = f"backfill s3://{settings.bucket}/{prefix}"
        _walked(settings, job, lambda after: listed(s3, settings.bucket, prefix, after, page_size), restart, rate, dry_run)


def _pipeline_versions(settings: Settings) -> dict[str, int]:
    """Each pipeline's version, as the workers register them: the built-in ones and DROPQ_PIPELINE_MODULES'."""
    import importlib

    from tasks.pipelines import VERSIONS

    for module in settings.pipeline_modules:
        importlib.import_module(module)
    return VERSIONS


@main.command()
@click.option("--pipeline", required=True, help="The pipeline whose files to redo.")
@click.option("--before", type=int, default=None, metavar="VERSION", help="Redo files made below this version (default: its current).")
@click.option("--prefix", default=None, help="Only keys below this prefix (default: the inbox).")
@click.option("--rate", type=click.FloatRange(min=0.1), default=None, help=RATE_HELP)
@click.option("--dry-run", is_flag=True, help="Count what would be enqueued and enqueue nothing.")
@click.option("--restart", is_flag=True, help="Start from the top instead of carrying on from the last run's checkpoint.")
def reprocess(pipeline: str, before: int | None, prefix: str | None, rate: float | None, dry_run: bool, restart: bool) -> None:
    """Enqueue again the succeeded files of PIPELINE whose outputs an older version made; the new outputs replace them."""
    from dropq.backfill import Reprocess, listed

    settings = _settings()
    _pipeline(settings, pipeline)
    versions = _pipeline_versions(settings)
    if pipeline not in versions:
        raise click.ClickException(f"--pipeline {pipeline!r} is routed to but no module registers it (DROPQ_PIPELINE_MODULES)")
    current = versions[pipeline]
    below = current if before is None else before
    if below > current:
        raise click.ClickException(f"--before {below}: {pipeline} has no version {below} (its current version is {current})")
    if below <= 1:
        raise click.ClickException(f"{pipeline} is at version {current}: no version below {below} made anything; raise it in @pipeline")
    start = _target(settings, prefix or "")
    s3 = settings.client("s3")
    job = f"reprocess {pipeline} below version {below} in s3://{settings.bucket}/{start}"
    _walked(settings, job, lambda after: listed(s3, settings.bucket, start, after), restart, rate, dry_run, Reprocess(pipeline, below))


def _stack_args() -> list[str]:
    """--stack NAME as it was given on the command line (not from DROPQ_STACK), to repeat it in a printed command."""
    root = click.get_current_context().find_root()
    stack = root.params.get("stack")
    return ["--stack", stack] if stack and root.get_parameter_source("stack") == ParameterSource.COMMANDLINE else []


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; anything but loopback needs a token.")
@click.option("--port", default=DASHBOARD_PORT, show_default=True, help="Port to listen on.")
@click.option("--token", envvar=DASHBOARD_TOKEN, default=None, help="The token API calls need (made up beyond loopback).")
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(min=0.5), help="Seconds between readings.")
def dashboard(host: str, port: int, token: str | None, interval: float) -> None:
    """Serve a live dashboard of queues, pools and files, with redrive, retry and purge, until Ctrl-C."""
    from ops.dashboard.server import Dashboard

    deployment = _deployment()
    board = Dashboard(deployment, host=host, port=port, token=token, interval=interval)
    stop = StopRequest()
    stop.install()
    try:
        with _reaching(deployment.settings):
            board.start()
    except ConfigError as exc:
        raise click.ClickException(f"{exc} (--port)") from exc
    try:
        click.echo(f"dashboard of {deployment.name}: {board.url}\nCtrl-C stops it.")
        sys.stdout.flush()
        stop.wait()
    finally:
        board.stop()


def _positive(option: str, text: str | None, kind: type[int] | type[float]) -> float | None:
    """A positive number given to `option` (thousands may be written 10_000 or 10,000), or a one-line error naming it."""
    if text is None:
        return None
    try:
        value = kind(float(text.replace("_", "").replace(",", "")))
    except ValueError:
        raise click.ClickException(f"{option} {text!r} is not a number") from None
    if not value > 0:
        raise click.ClickException(f"{option} {text} must be positive")
    return value


@main.command()
@click.option("--profile", default="default", show_default=True, help="The topology profile to plan (default, production).")
@click.option("--pool", default=None, help="The worker pool to plan (default: the one of the default queue).")
@click.option("--workload", default="images-small", show_default=True, help="What one file costs (ops/capacity/, WORKLOADS).")
@click.option("--burst", default=None, metavar="N", help="Files dropped at once (default: 10,000,000 unless --rate).")
@click.option("--rate", default=None, metavar="R", help="Files dropped per second, for --for.")
@click.option("--for", "for_", default=None, metavar="DURATION", help="How long --rate lasts: 90s, 30m, 2h, 1d.")
@click.option("--cpu-seconds", default=None, metavar="X", help="Worker CPU seconds per file, instead of the workload's.")
@click.option("--vcpu-quota", default=None, metavar="N", help="The account's Fargate vCPU quota (default: infra/quotas.py's).")
@click.option("--s3-prefixes", default=None, metavar="N", help="Partitioned prefixes S3 already has for the outputs (default 1).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--markdown", is_flag=True, help="Print Markdown (as in BENCHMARKS.md) instead of a table.")
def plan(
    profile: str,
    pool: str | None,
    workload: str,
    burst: str | None,
    rate: str | None,
    for_: str | None,
    cpu_seconds: str | None,
    vcpu_quota: str | None,
    s3_prefixes: str | None,
    as_json: bool,
    markdown: bool,
) -> None:
    """Simulate a burst or a steady rate of files on a profile: time to drain, tasks, queue age, limits, cost. No AWS needed."""
    import dataclasses

    from dropq.topology import PROFILES
    from ops import capacity

    if profile not in PROFILES:
        raise click.ClickException(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    topology = PROFILES[profile]
    pools = [p.name for p in topology.pools]
    if pool is not None and pool not in pools:
        raise click.ClickException(f"unknown pool {pool!r} in profile {profile}; known: {', '.join(pools)}")
    if workload not in capacity.WORKLOADS:
        raise click.ClickException(f"unknown workload {workload!r}; known: {', '.join(capacity.WORKLOADS)}")
    if burst is not None and (rate is not None or for_ is not None):
        raise click.ClickException(f"--burst {burst} and --rate/--for are two kinds of arrivals; give one")
    if (rate is None) != (for_ is None):
        raise click.ClickException("--rate needs --for DURATION, and --for needs --rate")
    files, per_second = _positive("--burst", burst, int), _positive("--rate", rate, float)
    cpu, vcpus, prefixes = (
        _positive("--cpu-seconds", cpu_seconds, float),
        _positive("--vcpu-quota", vcpu_quota, int),
        _positive("--s3-prefixes", s3_prefixes, int),
    )
    chosen = capacity.WORKLOADS[workload]
    if cpu is not None:
        chosen = dataclasses.replace(chosen, cpu_seconds=cpu, source=f"--cpu-seconds {cpu:g}")
    try:
        if per_second is not None and for_ is not None:
            seconds = capacity.parse_duration(for_)
            if not seconds > 0:
                raise click.ClickException(f"--for {for_!r} must be positive")
            arrivals = capacity.Arrivals.steady(per_second, seconds)
        else:
            arrivals = capacity.Arrivals.burst(int(files or capacity.DEFAULT_BURST))
    except ValueError as exc:
        raise click.ClickException(f"--for: {exc}" if for_ is not None else str(exc)) from exc
    account = capacity.Account(
        vcpu_quota=int(vcpus or capacity.Account.vcpu_quota), s3_prefixes=int(prefixes or capacity.Account.s3_prefixes)
    )
    result = capacity.plan(topology, chosen, arrivals, pool=pool, account=account)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.markdown() if markdown else result.render())


@main.command(name="settings")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the reference of every variable (SETTINGS.md).")
def settings_(as_markdown: bool) -> None:
    """Show each setting as this environment gives it to a worker or the producer: variable, value, where from."""
    if as_markdown:
        click.echo(reference(CLI_VARIABLES), nl=False)
        return
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    for v in VARIABLES:
        value = v.parser.text(getattr(settings, v.field)) or "-"
        click.echo(f"{v.name:<28} {value:<40} {'set' if v.raw(os.environ) is not None else 'default'}")
    for endpoint in settings.webhook_endpoints:
        click.echo(f"{webhook_variable(endpoint.name, 'URL'):<28} {endpoint.url:<40} set")
    if missing := missing_for_aws(os.environ):
        click.echo(f"no endpoint, so AWS: a worker or the producer here stops at start, lacking {', '.join(missing)}")


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

    from dropq.schedules import Firing, enqueue_run, period_id
    from dropq.signing import signer_for

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
    from ops import dlq as dead_letters

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
    from ops import dlq as dead_letters

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
    from ops import dlq as dead_letters

    settings = _settings()
    sqs = settings.client("sqs")
    for name, dlq_url, _ in _dead_letter_queues(settings, queue):
        with _reaching(settings):
            deleted = dead_letters.purge(sqs, dlq_url)
        click.echo(f"{settings.physical_name(name)}-dlq: {deleted} message(s) deleted")


if __name__ == "__main__":
    main()

"""The dashboard's web application (Flask): the page, its JSON, the search over the ledger, and the actions on dead
letters and failed files.

Safe by default: bound to loopback, it answers only requests addressed to loopback (no DNS rebinding);
bound anywhere else, every API call needs the token. Actions take JSON only, so a form on another site
cannot post one.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from typing import Any

from flask import Flask, Response, abort, jsonify, redirect, request
from werkzeug.exceptions import HTTPException

from dropq.errors import ActionError
from dropq.ledger import FAILED, STATES, iso
from dropq.settings import Settings
from dropq.signing import signer_for
from ops import dlq
from ops.dashboard.monitor import Monitor
from ops.finding import (
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    check_limit,
    check_state,
    decode_page,
    every_match,
    file_history,
    find_files,
    parse_since,
    summary,
)
from ops.retry import retry_file, retry_files

TOKEN_HEADER = "X-Dropq-Token"
# Every response's security headers. The page is its own HTML, script and stylesheet and nothing else: no inline
# script or style, no other origin, no frames, no forms; its favicon is a data: URL. Its JSON is never cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
# How long a link to an output stays valid.
OUTPUT_LINK_SECONDS = 15 * 60
STATIC = files("ops.dashboard") / "static"
# The search's periods on the page, and its period unless one is given (as `dropq files`).
SINCE_CHOICES = ("1h", "1d", "7d")
DEFAULT_SINCE = "1d"


class BadInput(Exception):
    """A request the API cannot answer as asked: its status and a one-line message naming the value."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Selection:
    """What a search (or a retry of its failures) selects: files in `state` since `since`, below `prefix`, of `pipeline`."""

    since: datetime
    state: str | None
    prefix: str | None
    pipeline: str | None


def pipelines_of(settings: Settings) -> list[str]:
    """The pipelines the topology's routes name, sorted (the page's pipeline filter)."""
    return sorted({route.pipeline for route in settings.topology.routes})


def selection(values: Mapping[str, Any], settings: Settings) -> Selection:
    """The search `values` (query arguments or a JSON body) ask for; BadInput naming the first that is wrong."""

    def text(name: str) -> str | None:
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise BadInput(f"{name} {value!r} is not text")
        return (value or "").strip() or None

    try:
        state = check_state(text("state"), option="state")
        since = parse_since(text("since") or DEFAULT_SINCE, option="since")
    except ActionError as exc:
        raise BadInput(str(exc)) from exc
    pipeline, known = text("pipeline"), pipelines_of(settings)
    if pipeline is not None and pipeline not in known:
        raise BadInput(f"pipeline {pipeline!r} is no pipeline of this deployment's routes; known: {', '.join(known)}")
    # A prefix is matched as typed (no strip: a key may end in a space).
    prefix = values.get("prefix") or None
    if prefix is not None and not isinstance(prefix, str):
        raise BadInput(f"prefix {prefix!r} is not text")
    return Selection(since, state, prefix, pipeline)


def create_app(monitor: Monitor, token: str | None = None, loopback_host: str | None = "127.0.0.1") -> Flask:
    """The application over `monitor`'s deployment; `token` guards the API. Bound to a loopback address
    (`loopback_host`; None when bound beyond loopback), it answers only to loopback's names and that address."""
    names = LOOPBACK_NAMES | ({f"[{loopback_host}]" if ":" in loopback_host else loopback_host} if loopback_host else set())
    app = Flask(__name__, static_folder=None)
    settings = monitor.deployment.settings
    signer = signer_for(settings)

    @app.before_request
    def guard() -> None:
        name = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
        if loopback_host and name not in names:
            abort(403, f"this dashboard answers on 127.0.0.1 or localhost, not {request.host}")
        if token is not None and request.path.startswith(("/api/", "/outputs/")):
            given = request.headers.get(TOKEN_HEADER) or request.args.get("token") or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                abort(403, "this dashboard needs its token: open the URL `dropq dashboard` printed")
        if request.method == "POST" and not request.is_json:
            abort(415, "actions take a JSON body")

    @app.after_request
    def secure(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | tuple[Response, int]:
        # Every refusal as JSON saying why, which the page shows whichever call met it first (a redirect stays one).
        if exc.code is None or exc.code < 400:
            return exc.get_response()
        return jsonify(error=exc.description), exc.code

    @app.errorhandler(ActionError)
    def refused(exc: ActionError) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 409

    @app.errorhandler(BadInput)
    def bad_input(exc: BadInput) -> tuple[Response, int]:
        return jsonify(error=str(exc)), exc.status

    @app.get("/")
    def page() -> Response:
        return Response((STATIC / "index.html").read_text(), mimetype="text/html")

    @app.get("/static/<name>")
    def static_file(name: str) -> Response:
        kinds = {".js": "text/javascript", ".css": "text/css"}
        kind = next((k for suffix, k in kinds.items() if name.endswith(suffix)), None)
        if kind is None or "/" in name or not (STATIC / name).is_file():
            abort(404)
        return Response((STATIC / name).read_text(), mimetype=kind)

    @app.get("/api/state")
    def state() -> Response:
        return jsonify(monitor.view())

    def dead_letter_queue(name: str) -> tuple[str, str]:
        spec = next((q for q in settings.topology.queues if q.name == name), None)
        if spec is None:
            abort(404, f"no queue {name!r}")
        return settings.queue_url(spec.dlq_name), settings.queue_url(spec.name)

    @app.post("/api/queues/<name>/redrive")
    def redrive(name: str) -> Response:
        dlq_url, queue_url = dead_letter_queue(name)
        moved = dlq.redrive(monitor.sqs, dlq_url, queue_url)
        monitor.tick()
        return jsonify(queue=name, moved=moved)

    @app.post("/api/queues/<name>/purge")
    def purge(name: str) -> Response:
        dlq_url, _ = dead_letter_queue(name)
        body: dict[str, Any] = request.get_json(silent=True) or {}
        if body.get("confirm") != name:
            abort(400, f"purging deletes the dead letters for good: confirm with {{'confirm': {name!r}}}")
        deleted = dlq.purge(monitor.sqs, dlq_url)
        monitor.tick()
        return jsonify(queue=name, deleted=deleted)

    @app.post("/api/files/retry")
    def retry() -> Response:
        key = (request.get_json(silent=True) or {}).get("key")
        if not isinstance(key, str) or not key:
            abort(400, "name the file to retry: {'key': 'incoming/photo.jpg'}")
        # One file named, as `dropq retry KEY`: a queued one's message, which may be gone, is sent again.
        item = retry_file(key, settings, monitor.ledger, monitor.sqs, signer, resend_queued=True)
        monitor.tick()
        return jsonify(key=key, task_id=item.task_id, queue=item.queue)

    @app.get("/api/find-options")
    def find_options() -> Response:
        """What the search's filters offer (no read of the deployment)."""
        return jsonify(states=list(STATES), pipelines=pipelines_of(settings), since=list(SINCE_CHOICES), default_since=DEFAULT_SINCE)

    @app.get("/api/files")
    def find() -> Response:
        """A page of files as `dropq files` lists it: bounded reads, on demand only (never by the page's refresh)."""
        chosen = selection(request.args, settings)
        raw_limit = request.args.get("limit") or str(PAGE_SIZE)
        try:
            limit = check_limit(int(raw_limit), option="limit")
        except ValueError:
            raise BadInput(f"limit {raw_limit!r} is not a number of files (1..{MAX_PAGE_SIZE})") from None
        except ActionError as exc:
            raise BadInput(str(exc)) from exc
        token = request.args.get("page") or None
        if token is not None:
            try:
                decode_page(token, chosen.state, option="page")
            except ActionError:
                message = f"page {token!r} is not a page of this search (its Next button's, for the same state): search again"
                raise BadInput(message) from None
        found = find_files(monitor.ledger, chosen.since, chosen.state, chosen.prefix, chosen.pipeline, limit=limit, page=token)
        return jsonify(
            files=[summary(entry) for entry in found.files],
            next_page=found.next_page,
            examined=found.examined,
            reached=found.reached,
            since=iso(chosen.since),
            state=chosen.state,
            prefix=chosen.prefix,
            pipeline=chosen.pipeline,
        )

    @app.get("/api/file")
    def file_versions() -> Response:
        """Every version of one key, newest first (one Query), as `dropq file KEY --json`."""
        key = request.args.get("key") or ""
        if not key:
            raise BadInput("name the file: /api/file?key=incoming/photo.jpg")
        try:
            versions = file_history(monitor.ledger, settings.bucket, key, monitor.s3, settings.topology)
        except ActionError as exc:
            raise BadInput(str(exc), status=404) from exc
        return jsonify(bucket=settings.bucket, key=key, versions=versions)

    @app.post("/api/retry-many")
    def retry_many() -> Response:
        """Retry failed files: `keys` (the failures a page shows), else every failure the selection matches; each is
        checked again and retried only while it is still failed."""
        body = request.get_json(silent=True) or {}
        if not isinstance(body, dict):
            raise BadInput("send a JSON object: {'state': 'failed', 'keys': ['incoming/photo.jpg']}")
        if body.get("state") != FAILED:
            raise BadInput(f"state {body.get('state')!r}: only failed files are retried; send {{'state': 'failed', ...}}")
        chosen = selection(body, settings)
        keys = body.get("keys")
        skipped: dict[str, str] = {}
        if keys is None:
            keys = [entry["key"] for entry in every_match(monitor.ledger, chosen.since, FAILED, chosen.prefix, chosen.pipeline)]
            if len(keys) > MAX_PAGE_SIZE:
                raise BadInput(f"{len(keys)} failures match: at most {MAX_PAGE_SIZE} are retried at once; narrow since, prefix or pipeline")
        else:
            if not (isinstance(keys, list) and keys and all(isinstance(k, str) and k for k in keys)):
                raise BadInput("keys must be a list of the file keys to retry: {'keys': ['incoming/photo.jpg']}")
            if len(keys) > MAX_PAGE_SIZE:
                raise BadInput(f"{len(keys)} keys: at most {MAX_PAGE_SIZE} are retried at once (a page's)")
            if chosen.prefix is not None:
                skipped = {k: f"{k} is not below {chosen.prefix}" for k in keys if not k.startswith(chosen.prefix)}
                keys = [k for k in keys if k not in skipped]
        outcome = retry_files(keys, settings, monitor.ledger, monitor.sqs, signer)
        if outcome.queued:
            monitor.tick()
        return jsonify(retried=sorted(item.ref.key for item in outcome.queued), skipped={**skipped, **outcome.skipped})

    @app.get("/outputs/<path:key>")
    def output(key: str) -> Any:
        if not key.startswith(settings.topology.output_prefix):
            abort(404, "only outputs are linked")
        params = {"Bucket": settings.bucket, "Key": key}
        return redirect(monitor.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=OUTPUT_LINK_SECONDS))

    return app

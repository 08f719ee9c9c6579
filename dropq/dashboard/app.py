"""The dashboard's web application (Flask): the page, its JSON, and the actions on dead letters and failed files.

Safe by default: bound to loopback, it answers only requests addressed to loopback (no DNS rebinding);
bound anywhere else, every API call needs the token. Actions take JSON only, so a form on another site
cannot post one.
"""

from __future__ import annotations

import hmac
from importlib.resources import files
from typing import Any

from flask import Flask, Response, abort, jsonify, redirect, request

from dropq import dlq
from dropq.dashboard.monitor import Monitor
from dropq.errors import ActionError
from dropq.retry import retry_file
from dropq.signing import signer_for

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
STATIC = files("dropq.dashboard") / "static"


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

    @app.errorhandler(ActionError)
    def refused(exc: ActionError) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 409

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
        item = retry_file(key, settings, monitor.ledger, monitor.sqs, signer)
        monitor.tick()
        return jsonify(key=key, task_id=item.task_id, queue=item.queue)

    @app.get("/outputs/<path:key>")
    def output(key: str) -> Any:
        if not key.startswith(settings.topology.output_prefix):
            abort(404, "only outputs are linked")
        params = {"Bucket": settings.bucket, "Key": key}
        return redirect(monitor.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=OUTPUT_LINK_SECONDS))

    return app

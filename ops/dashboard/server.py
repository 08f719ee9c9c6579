"""Serve the dashboard (waitress) next to its monitor, on loopback unless asked otherwise."""

from __future__ import annotations

import ipaddress
import secrets
import threading
from typing import Any

from waitress import create_server
from waitress.wasyncore import close_all

from dropq.deployment import Deployment
from dropq.errors import ConfigError
from dropq.settings import DASHBOARD_PORT
from ops.dashboard.app import create_app
from ops.dashboard.monitor import Monitor

SERVER_THREADS = 4


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Dashboard:
    """The dashboard of one deployment: `start`, open `url`, `stop`."""

    def __init__(
        self, deployment: Deployment, host: str = "127.0.0.1", port: int = DASHBOARD_PORT, token: str | None = None, interval: float = 5.0
    ) -> None:
        """Bound to anything but loopback, the dashboard needs a token (one is made up when none is given)."""
        self.host = host
        self.token = token if token or is_loopback(host) else secrets.token_urlsafe(24)
        self.monitor = Monitor(deployment, interval=interval)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._port = port

    @property
    def port(self) -> int:
        return self._server.effective_port if self._server is not None else self._port

    @property
    def url(self) -> str:
        """Where to open it (with the token after '#', which browsers never send to servers or in a Referer)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"#token={self.token}" if self.token else "")

    def start(self) -> Dashboard:
        """Serve in the background; ConfigError when the port is taken."""
        self.monitor.start()
        app = create_app(self.monitor, self.token, loopback_host=self.host if is_loopback(self.host) else None)
        try:
            self._server = create_server(app, host=self.host, port=self._port, threads=SERVER_THREADS, ident="dropq")
        except OSError as exc:
            self.monitor.stop()
            raise ConfigError(f"the dashboard cannot listen on {self.host}:{self._port} ({exc.strerror}): choose another port") from exc
        self._thread = threading.Thread(target=self._server.run, name="dashboard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            # Let requests under way finish writing (they need the server's trigger), then close it and every
            # connection (a browser's keep-alive one would keep the server's loop running).
            self._server.task_dispatcher.shutdown()
            close_all(self._server._map)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.monitor.stop()

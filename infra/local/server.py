"""A moto server in a child process, bound to loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from infra.local.processes import start_process, stop_process

STARTUP_SECONDS = 30


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    """A port the kernel says is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MotoServer:
    """`python -m moto.server` on 127.0.0.1:`port`, logging to `log_path`."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """Where AWS clients reach this server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it answers."""
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} on 127.0.0.1 is taken; stop what uses it or pass --port")
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = start_process(command, self.log_path, env=None)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}; see {self.log_path}")
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).close()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"moto server did not answer on {self.endpoint_url} within {STARTUP_SECONDS}s; see {self.log_path}")

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None:
            stop_process(self.process, timeout=10)
            self.process = None

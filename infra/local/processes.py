"""Child processes of the local cloud: started in their own session, logged to a file, stopped politely."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def start_process(command: Sequence[str], log_path: Path, env: Mapping[str, str] | None) -> subprocess.Popen[bytes]:
    """Start `command` with stdout and stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            # Its own process group, so that Ctrl-C in a terminal reaches only `dropq up`, which stops it in order.
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float, sig: int = signal.SIGTERM) -> int:
    """Send `sig`, wait up to `timeout` seconds, then SIGKILL the whole group; return the exit code."""
    stop_processes([process], timeout, sig)
    return process.wait()


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], timeout: float, sig: int = signal.SIGTERM) -> None:
    """Send `sig` to each process once, give them `timeout` seconds together, then SIGKILL the groups still alive."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

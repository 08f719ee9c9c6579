"""`dropq up` as a user runs it: prints what to export, processes an `aws s3 cp`, and Ctrl-C stops everything."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dropq.ledger import ledger_for
from dropq.settings import load_settings
from infra.local.server import free_port, port_is_free
from tests.conftest import wait_for, wait_for_outcome

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def _output_once_stopped(up: subprocess.Popen[str], workers: list[int], state_dir: Path, timeout: float = 60) -> str:
    """What `dropq up` printed once it has exited after Ctrl-C. One that has not exited within `timeout` fails the test
    with where it is stuck: its threads (it prints them on SIGUSR1) and its workers' (a Celery worker logs them on
    SIGUSR1), then it and everything it started are killed."""
    try:
        return up.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        for pid in [up.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
        time.sleep(2)
        # Its children (server, producer, workers) lead groups of their own.
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(int(p.name)) == up.pid]
        for pid in [*children, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        up.kill()
        output = up.communicate()[0]
        logs = "".join(f"\n--- {log.name}:\n{log.read_text(errors='replace')[-20000:]}" for log in sorted(state_dir.glob("worker-*.log")))
        pytest.fail(f"dropq up did not stop within {timeout}s of Ctrl-C:\n{output}{logs}")


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_up_runs_in_the_foreground_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    dropq = str(Path(sys.executable).with_name("dropq"))
    pids: list[int] = []
    dashboard_port = free_port()
    command = [dropq, "up", "--port", str(port), "--dashboard-port", str(dashboard_port)]
    # Your own pipelines' module, which the workers import (the repository on their path, as an installed package is).
    root = str(Path(__file__).resolve().parents[2])
    mine = {"DROPQ_PIPELINE_MODULES": "tests.workloads", "PYTHONPATH": root}
    up = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, **mine}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        printed: list[str] = []
        deadline = time.monotonic() + 90
        while not any("Ctrl-C stops everything" in line for line in printed):
            assert up.poll() is None and time.monotonic() < deadline, "".join(printed)
            printed.append(up.stdout.readline() if up.stdout else "")
        exports = dict(line.removeprefix("export ").strip().split("=", 1) for line in printed if line.startswith("export "))
        assert exports["DROPQ_ENDPOINT_URL"] == exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
        assert exports["DROPQ_PIPELINE_MODULES"] == "tests.workloads", "your pipelines reach the cloud's processes"
        assert f"aws --endpoint-url http://127.0.0.1:{port} s3 cp photo.jpg s3://dropq-local/incoming/\n" in printed
        # The dashboard is served where `dropq up` says
        assert f"  dashboard: http://127.0.0.1:{dashboard_port}/\n" in printed
        with urllib.request.urlopen(f"http://127.0.0.1:{dashboard_port}/api/state", timeout=30) as response:
            assert [q["physical_name"] for q in json.load(response)["queues"]] == ["dropq-default", "dropq-heavy", "dropq-urgent"]

        # A plain `aws s3 cp` with the printed exports triggers processing
        (tmp_path / "notes.txt").write_text("hello from the aws CLI\n")
        env = {**os.environ, **exports}
        aws = str(Path(sys.executable).with_name("aws"))
        subprocess.run([aws, "s3", "cp", "notes.txt", "s3://dropq-local/incoming/notes.txt"], cwd=tmp_path, env=env, check=True, timeout=60)
        settings = load_settings(exports)
        ledger = ledger_for(settings)
        assert wait_for_outcome(ledger, "dropq-local", "incoming/notes.txt")["state"] == "succeeded"
        workers = wait_for(ledger.workers, 30, "a worker heartbeat")
        pids = [w["pid"] for w in workers]
        assert all(_alive(pid) for pid in pids)
    finally:
        up.send_signal(signal.SIGINT)
        output = _output_once_stopped(up, pids, tmp_path / ".dropq")
    assert up.returncode == 0, output
    assert output.rstrip().endswith("stopped.")
    assert port_is_free(port) and port_is_free(dashboard_port)
    assert not any(_alive(pid) for pid in pids)
    assert sorted(p.name for p in (tmp_path / ".dropq").iterdir()) == ["lambda.log", "moto.log", "state", "worker-default-1.log"]
    assert "saved 2 objects" in output, "the bucket (the file and its output), the ledger and the queues, for the next run"


@pytest.mark.parametrize("taken", ["--port", "--dashboard-port"])
def test_up_refuses_a_port_in_use_before_starting_anything(tmp_path: Path, taken: str) -> None:
    import socket

    ports = {"--port": free_port(), "--dashboard-port": free_port()}
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", ports[taken]))
        listener.listen()
        dropq = str(Path(sys.executable).with_name("dropq"))
        command = [dropq, "up", *(str(part) for option, port in ports.items() for part in (option, port))]
        up = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert up.returncode == 1
    assert f"port {ports[taken]} on 127.0.0.1 is in use ({taken})" in up.stderr and f'make run ARGS="{taken} ' in up.stderr
    assert not (tmp_path / ".dropq").exists(), "nothing was started"


def test_make_run_installs_only_what_running_needs_and_passes_its_options_to_up() -> None:
    root = Path(__file__).resolve().parents[2]
    planned = subprocess.run(
        ["make", "-n", "-B", "--no-print-directory", "run", "ARGS=--port 4600"],
        cwd=root,
        # Not as a sub-make of `make test`: its flags (and -w) stay out of this plan.
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "pip install --quiet -e '.[local]'" in planned and "[dev]" not in planned, planned
    assert planned.rstrip().splitlines()[-1].endswith("/dropq up --port 4600")

"""`dropq up` as a user runs it: prints what to export, processes an `aws s3 cp`, and Ctrl-C stops everything."""

from __future__ import annotations

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


def test_up_runs_in_the_foreground_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    dropq = str(Path(sys.executable).with_name("dropq"))
    pids: list[int] = []
    dashboard_port = free_port()
    command = [dropq, "up", "--port", str(port), "--dashboard-port", str(dashboard_port)]
    up = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        printed: list[str] = []
        deadline = time.monotonic() + 90
        while not any("Ctrl-C stops everything" in line for line in printed):
            assert up.poll() is None and time.monotonic() < deadline, "".join(printed)
            printed.append(up.stdout.readline() if up.stdout else "")
        exports = dict(line.removeprefix("export ").strip().split("=", 1) for line in printed if line.startswith("export "))
        assert exports["DROPQ_ENDPOINT_URL"] == exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
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
        output, _ = up.communicate(timeout=90)
    assert up.returncode == 0, output
    assert output.rstrip().endswith("stopped.")
    assert port_is_free(port) and port_is_free(dashboard_port)
    assert not any(_alive(pid) for pid in pids)
    assert sorted(p.name for p in (tmp_path / ".dropq").iterdir()) == ["lambda.log", "moto.log", "worker-default-1.log"]

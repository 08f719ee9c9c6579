"""A worker on a kombu whose private parts dropq overrides have changed refuses to start, naming what changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dropq.settings import local_settings
from infra.local.server import free_port


def test_a_worker_refuses_to_start_on_a_kombu_without_a_method_dropq_overrides(tmp_path: Path) -> None:
    # Given a Python where kombu's SQS channel has lost a private method dropq relies on (as on another kombu version)
    (tmp_path / "sitecustomize.py").write_text("import kombu.transport.SQS as sqs\ndel sqs.Channel._has_redrive_policy\n")
    env = {**os.environ, **local_settings(port=free_port()).environment(), "PYTHONPATH": str(tmp_path)}
    # When a worker starts
    celery = Path(sys.executable).with_name("celery")
    result = subprocess.run(
        [str(celery), "-A", "tasks", "worker", "--pool", "solo", "--loglevel", "INFO"], env=env, capture_output=True, text=True, timeout=60
    )
    # Then it exits at once, saying what changed, instead of running without the fix
    assert result.returncode != 0
    assert "kombu.transport.SQS.Channel._has_redrive_policy is gone" in result.stderr + result.stdout
    assert "Install the versions pyproject.toml pins" in result.stderr + result.stdout


def test_a_worker_without_an_endpoint_or_aws_settings_refuses_to_start_naming_them(tmp_path: Path) -> None:
    # Given the environment of a misconfigured container: no endpoint, so AWS, but none of a stack's settings
    ours = ("DROPQ_", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    # When a worker starts
    celery = Path(sys.executable).with_name("celery")
    result = subprocess.run(
        [str(celery), "-A", "tasks", "worker", "--pool", "solo", "--loglevel", "INFO"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then it stops at once, naming what is missing, instead of talking to a default endpoint
    output = result.stderr + result.stdout
    assert result.returncode != 0, output[-2000:]
    assert "DROPQ_ENDPOINT_URL is not set, so this process talks to AWS, which needs AWS_REGION (or AWS_DEFAULT_REGION)" in output
    assert "DROPQ_ACCOUNT_ID, DROPQ_BUCKET, DROPQ_PREFIX: not set" in output

from __future__ import annotations

from click.testing import CliRunner

from infra.local.server import free_port
from ops.cli import main


def test_status_without_a_local_cloud_says_what_to_do() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["status"], env={"DROPQ_ENDPOINT_URL": endpoint})
    assert result.exit_code == 1
    assert f"cannot reach {endpoint}. Is `dropq up` running" in result.output


def test_a_malformed_setting_is_named() -> None:
    result = CliRunner().invoke(main, ["status"], env={"DROPQ_MAX_RETRIES": "lots"})
    assert result.exit_code == 1
    assert "DROPQ_MAX_RETRIES='lots' is not an integer" in result.output


def test_settings_shows_each_variable_its_value_and_whether_it_was_set() -> None:
    # (None unsets what this process's environment may hold)
    env: dict[str, str | None] = {"DROPQ_ENDPOINT_URL": "http://127.0.0.1:4600", "DROPQ_MAX_RETRIES": "2", "DROPQ_DELAY_HOP_SECONDS": None}
    result = CliRunner().invoke(main, ["settings"], env=env)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()}
    assert lines["DROPQ_MAX_RETRIES"] == ["2", "set"]
    assert lines["DROPQ_ENDPOINT_URL"] == ["http://127.0.0.1:4600", "set"]
    assert lines["DROPQ_DELAY_HOP_SECONDS"] == ["900", "default"]
    malformed = CliRunner().invoke(main, ["settings"], env={"DROPQ_MAX_INPUT_BYTES": "0"})
    assert malformed.exit_code == 1 and "DROPQ_MAX_INPUT_BYTES=0 is below its minimum 1" in malformed.output
    unset: dict[str, str | None] = {"DROPQ_ACCOUNT_ID": None, "DROPQ_BUCKET": None, "DROPQ_PREFIX": None}
    aws = CliRunner().invoke(main, ["settings"], env={"DROPQ_ENDPOINT_URL": "", "AWS_REGION": "eu-west-1", **unset})
    assert "lacking DROPQ_ACCOUNT_ID, DROPQ_BUCKET, DROPQ_PREFIX" in aws.output

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

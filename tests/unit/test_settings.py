from __future__ import annotations

import pytest

from dropq.errors import ConfigError
from dropq.settings import load_settings


def test_defaults_are_the_local_cloud() -> None:
    settings = load_settings({})
    assert settings.endpoint_url == "http://127.0.0.1:4566"
    assert settings.queue_url("default") == "http://127.0.0.1:4566/123456789012/dropq-default"
    assert settings.bucket == "dropq-local"


def test_an_empty_endpoint_means_aws() -> None:
    settings = load_settings(
        {"DROPQ_ENDPOINT_URL": "", "AWS_REGION": "eu-west-1", "DROPQ_ACCOUNT_ID": "111122223333", "DROPQ_BUCKET": "acme-drop"}
    )
    assert not settings.is_local
    assert settings.queue_url("default") == "https://sqs.eu-west-1.amazonaws.com/111122223333/dropq-default"
    assert settings.bucket == "acme-drop"


def test_environment_round_trips() -> None:
    settings = load_settings({"DROPQ_ENDPOINT_URL": "http://127.0.0.1:9999", "DROPQ_MAX_RETRIES": "2"})
    assert load_settings(settings.environment()) == settings


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DROPQ_MAX_RETRIES": "many"}, "DROPQ_MAX_RETRIES='many' is not an integer"),
        ({"DROPQ_MAX_INPUT_BYTES": "0"}, "DROPQ_MAX_INPUT_BYTES=0 is below its minimum 1"),
        ({"DROPQ_ENDPOINT_URL": "localhost:4566"}, "DROPQ_ENDPOINT_URL='localhost:4566' is not an http"),
        ({"DROPQ_ACCOUNT_ID": "42"}, "DROPQ_ACCOUNT_ID='42' is not a 12-digit"),
    ],
)
def test_malformed_variables_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        load_settings(environ)


def test_the_profile_chooses_the_topology_and_an_unknown_one_is_refused_by_name() -> None:
    from dropq.topology import PRODUCTION

    settings = load_settings({"DROPQ_PROFILE": "production"})
    assert settings.topology is PRODUCTION and settings.environment()["DROPQ_PROFILE"] == "production"
    assert load_settings({}).profile == "default"
    with pytest.raises(ConfigError, match="DROPQ_PROFILE='huge' names no topology profile; known: default, production"):
        load_settings({"DROPQ_PROFILE": "huge"})

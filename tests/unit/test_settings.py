from __future__ import annotations

import pytest

from dropq.errors import ConfigError
from dropq.settings import load_settings, missing_for_aws, require_deployment


def test_the_local_cloud_is_where_its_endpoint_is_set() -> None:
    settings = load_settings({"DROPQ_ENDPOINT_URL": "http://127.0.0.1:4566"})
    assert settings.endpoint_url == "http://127.0.0.1:4566"
    assert settings.queue_url("default") == "http://127.0.0.1:4566/123456789012/dropq-default"
    assert settings.bucket == "dropq-local"


def test_without_an_endpoint_it_is_aws_and_a_worker_or_producer_without_its_settings_stops_naming_them() -> None:
    # No default endpoint: a worker in AWS whose variables are missing must not quietly talk to 127.0.0.1.
    assert not load_settings({}).is_local
    with pytest.raises(ConfigError) as refused:
        require_deployment({"DROPQ_BUCKET": "acme-drop"})
    assert str(refused.value).startswith(
        "DROPQ_ENDPOINT_URL is not set, so this process talks to AWS, which needs AWS_REGION (or AWS_DEFAULT_REGION), "
        "DROPQ_ACCOUNT_ID, DROPQ_PREFIX: not set."
    )
    deployed = {"AWS_REGION": "eu-west-1", "DROPQ_ACCOUNT_ID": "111122223333", "DROPQ_BUCKET": "acme-drop", "DROPQ_PREFIX": "acme-"}
    require_deployment(deployed)
    require_deployment({"DROPQ_ENDPOINT_URL": "http://127.0.0.1:4566"})
    # What a stack gives its workers is enough.
    assert missing_for_aws(load_settings(deployed).environment()) == []


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

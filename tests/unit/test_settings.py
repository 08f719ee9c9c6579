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


# A value other than the default for each variable another process is handed (webhooks have tests of their own).
OTHER_VALUES = {
    "DROPQ_ENDPOINT_URL": "http://127.0.0.1:4600",
    "AWS_REGION": "eu-west-1",
    "DROPQ_ACCOUNT_ID": "111122223333",
    "DROPQ_BUCKET": "acme-drop",
    "DROPQ_PREFIX": "",
    "DROPQ_PROFILE": "production",
    "DROPQ_STATE_DIR": "/tmp/acme",
    "DROPQ_MAX_RETRIES": "0",
    "DROPQ_MAX_INPUT_BYTES": "1024",
    "DROPQ_DELAY_HOP_SECONDS": "60",
    "DROPQ_TABLE_CHUNK_BYTES": "65536",
    "DROPQ_IMAGE_SPLIT_BYTES": "0",
    "DROPQ_PIPELINE_MODULES": "acme.pipelines,acme.more",
    "DROPQ_SIGNING_SECRET": "acme/signing",
}


# Message signing's files are set together or not at all.
SIGNING_FILES = {"DROPQ_SIGNING_KEY": "/k.pem", "DROPQ_SIGNING_CERT": "/c.pem", "DROPQ_SIGNING_CERT_STORE": "/trusted"}


def test_every_variable_is_read_into_its_field_and_handed_on_by_environment() -> None:
    from dropq.settings import VARIABLES

    passed = {v.name for v in VARIABLES if v.passed}
    assert passed == set(OTHER_VALUES) | set(SIGNING_FILES), "each variable handed on has a value here"
    local = {"DROPQ_ENDPOINT_URL": "http://127.0.0.1:4566"}
    defaults = load_settings(local)
    field = {v.name: v.field for v in VARIABLES}
    for case in [*({name: raw} for name, raw in OTHER_VALUES.items()), SIGNING_FILES]:
        # When a variable is set, its field alone changes, and the environment hands it on as set.
        settings = load_settings({**local, **case})
        changed = {v.field for v in VARIABLES if getattr(settings, v.field) != getattr(defaults, v.field)}
        # The profile changes the topology's own defaults too (its bucket, its input bound).
        assert {field[name] for name in case} <= changed, case
        assert "DROPQ_PROFILE" in case or changed == {field[name] for name in case}, (case, changed)
        assert all(settings.environment()[name] == raw for name, raw in case.items())
        assert load_settings(settings.environment()) == settings
    everything = load_settings(OTHER_VALUES)
    assert everything.pipeline_modules == ("acme.pipelines", "acme.more") and everything.prefix == ""
    assert load_settings(everything.environment()) == everything


def test_a_worker_s_pool_and_the_ecs_agent_are_read_but_not_handed_on() -> None:
    # Each is set where its process starts: the pool by infra/worker.py, the agent's address by ECS.
    settings = load_settings({"DROPQ_POOL": "default", "ECS_AGENT_URI": "http://169.254.170.2/api/task"})
    assert (settings.pool, settings.ecs_agent_uri) == ("default", "http://169.254.170.2/api/task")
    assert "DROPQ_POOL" not in settings.environment() and "ECS_AGENT_URI" not in settings.environment()
    with pytest.raises(ConfigError, match="DROPQ_POOL='huge' names no pool of the topology; known: "):
        load_settings({"DROPQ_POOL": "huge"})


def test_the_defaults_are_the_table_s_and_follow_the_topology() -> None:
    from dropq.settings import Settings
    from dropq.topology import PRODUCTION, TOPOLOGY

    assert load_settings({}) == Settings.defaults()
    production = Settings.defaults(PRODUCTION)
    assert production.bucket == PRODUCTION.bucket and production.max_input_bytes == PRODUCTION.max_input_bytes
    assert Settings.defaults(TOPOLOGY, max_retries=1).max_retries == 1


def test_settings_md_is_the_table_s_documentation() -> None:
    from pathlib import Path

    from dropq.settings import VARIABLES, reference
    from ops.cli import CLI_VARIABLES

    written = (Path(__file__).parents[2] / "SETTINGS.md").read_text()
    assert written == reference(CLI_VARIABLES), "SETTINGS.md is stale: dropq settings --markdown > SETTINGS.md"
    for v in VARIABLES:
        assert f"| `{' or '.join((v.name, *v.aliases))}` | {v.parser.bound} |" in written

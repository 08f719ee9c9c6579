from __future__ import annotations

from dropq.settings import load_settings
from tasks.config import celery_config


def test_local_config_points_everything_at_the_local_cloud() -> None:
    config = celery_config(load_settings({"DROPQ_ENDPOINT_URL": "http://127.0.0.1:5000"}))
    assert config["broker_url"] == "sqs://testing:testing@127.0.0.1:5000"
    assert config["broker_transport_options"]["predefined_queues"] == {
        name: {"url": f"http://127.0.0.1:5000/123456789012/dropq-{name}"} for name in ("default", "heavy", "urgent")
    }
    assert config["broker_transport_options"]["is_secure"] is False
    assert config["dynamodb_endpoint_url"] == "http://127.0.0.1:5000"
    assert config["result_backend"] == "tasks.results:DynamoDBBackend+dynamodb://testing:testing@us-east-1/dropq-results?ttl_seconds=604800"


def test_aws_config_uses_the_default_credential_chain() -> None:
    config = celery_config(load_settings({"DROPQ_ENDPOINT_URL": "", "AWS_REGION": "eu-west-1", "DROPQ_ACCOUNT_ID": "111122223333"}))
    assert config["broker_url"] == "sqs://"
    assert config["result_backend"].startswith("tasks.results:DynamoDBBackend+dynamodb://eu-west-1/dropq-results?")
    assert config["broker_transport_options"]["predefined_queues"]["default"]["url"] == (
        "https://sqs.eu-west-1.amazonaws.com/111122223333/dropq-default"
    )
    assert "dynamodb_endpoint_url" not in config


def test_json_only_late_acks_and_no_remote_control() -> None:
    settings = load_settings({})
    config = celery_config(settings)
    assert config["accept_content"] == config["result_accept_content"] == ["json"]
    assert config["task_serializer"] == config["result_serializer"] == "json"
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert not config["worker_enable_remote_control"] and not config["worker_send_task_events"]
    assert config["broker_transport"] == "tasks.broker.transport:Transport"


def test_a_crashed_workers_lease_runs_out_before_its_message_comes_back() -> None:
    from tasks.process import LEASE_SECONDS

    # The keeper extends every third of the timeout: a crash leaves at least two thirds of it.
    assert all(q.visibility_timeout - q.extend_every > LEASE_SECONDS for q in load_settings({}).topology.queues)


def test_a_stopping_worker_gets_its_pools_grace_inside_the_stop_timeout() -> None:
    from dropq.topology import TOPOLOGY
    from infra.worker import worker_environment

    pool = TOPOLOGY.pools[0]
    settings = load_settings(worker_environment(pool))
    assert settings.pool == pool.name
    assert 0 < settings.shutdown_grace == pool.shutdown_grace < pool.stop_timeout
    # Celery's soft shutdown sleeps its whole timeout; dropq's deadline (tasks/shutdown.py) replaces it.
    assert "worker_soft_shutdown_timeout" not in celery_config(settings)


def test_a_worker_runs_under_its_pools_time_limit() -> None:
    assert celery_config(load_settings({"DROPQ_POOL": "heavy"}))["task_time_limit"] == 1800
    assert celery_config(load_settings({"DROPQ_POOL": "default"}))["task_time_limit"] == 300

from __future__ import annotations

from dropq.settings import load_settings
from tasks.config import celery_config


def test_local_config_points_everything_at_the_local_cloud() -> None:
    config = celery_config(load_settings({"DROPQ_ENDPOINT_URL": "http://127.0.0.1:5000"}))
    assert config["broker_url"] == "sqs://testing:testing@127.0.0.1:5000"
    assert config["broker_transport_options"]["predefined_queues"] == {
        "default": {"url": "http://127.0.0.1:5000/123456789012/dropq-default"}
    }
    assert config["broker_transport_options"]["is_secure"] is False
    assert config["dynamodb_endpoint_url"] == "http://127.0.0.1:5000"
    assert config["result_backend"] == "dynamodb://testing:testing@us-east-1/dropq-results?ttl_seconds=604800"


def test_aws_config_uses_the_default_credential_chain() -> None:
    config = celery_config(load_settings({"DROPQ_ENDPOINT_URL": "", "AWS_REGION": "eu-west-1", "DROPQ_ACCOUNT_ID": "111122223333"}))
    assert config["broker_url"] == "sqs://"
    assert config["result_backend"].startswith("dynamodb://eu-west-1/dropq-results?")
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
    # a running task is never redelivered by its visibility timeout expiring first
    assert config["task_soft_time_limit"] < config["task_time_limit"] < min(q.visibility_timeout for q in settings.topology.queues)


def test_a_stopping_worker_finishes_or_requeues_its_tasks_before_the_stop_timeout_kills_it() -> None:
    from infra.topology import TOPOLOGY
    from infra.worker import WORKER_ENVIRONMENT

    config = celery_config(load_settings({}))
    assert 0 < config["worker_soft_shutdown_timeout"] < min(pool.stop_timeout for pool in TOPOLOGY.pools)
    # Celery's soft shutdown starts on SIGQUIT; Fargate and the local cloud send SIGTERM.
    assert WORKER_ENVIRONMENT["REMAP_SIGTERM"] == "SIGQUIT"

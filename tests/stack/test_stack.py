"""The synthesized stack, resource by resource, against the topology it is built from."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from dropq.observe import deployment
from dropq.settings import POOL, PREFIX
from dropq.topology import TOPOLOGY, WorkerPool
from infra.cloud.bundling import PRODUCER_MODULES
from infra.cloud.producer import POWERTOOLS_LAYER
from infra.scaling import BACKLOG_PER_WORKER_EXPRESSION, WAKE_EXPRESSION, backlog_expression, scaling_policy
from infra.worker import WORKER_ENVIRONMENT, worker_arguments
from tests.stack.conftest import Synthesized


def denies_insecure_transport(policy: dict[str, Any]) -> bool:
    """Whether a resource policy denies every request not made over TLS."""
    return any(
        s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in policy["PolicyDocument"]["Statement"]
    )


def statements(synthesized: Synthesized, role_path_part: str) -> list[dict[str, Any]]:
    """Every IAM statement attached to roles whose logical id contains `role_path_part`."""
    found = []
    for logical_id, props in synthesized.of_type("AWS::IAM::Policy").items():
        if role_path_part in logical_id:
            found += props["PolicyDocument"]["Statement"]
    return found


def actions(statement: dict[str, Any]) -> list[str]:
    raw = statement["Action"]
    return [raw] if isinstance(raw, str) else raw


def test_bucket_is_private_encrypted_tls_only_and_notifies_the_producer_for_the_inbox_only(synthesized: Synthesized) -> None:
    template = synthesized.template
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "LoggingConfiguration": Match.any_value(),
        },
    )
    bucket_policies = synthesized.of_type("AWS::S3::BucketPolicy").values()
    assert len(bucket_policies) == 2 and all(denies_insecure_transport(p) for p in bucket_policies)
    (notification,) = synthesized.of_type("Custom::S3BucketNotifications").values()
    assert set(notification["NotificationConfiguration"]) == {"QueueConfigurations"}
    (config,) = notification["NotificationConfiguration"]["QueueConfigurations"]
    assert config["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": TOPOLOGY.inbox_prefix}]
    assert config["QueueArn"]["Fn::GetAtt"][0].startswith("QueuesInboxEvents")
    assert not TOPOLOGY.output_prefix.startswith(TOPOLOGY.inbox_prefix), "outputs can never re-trigger the producer"


def test_producer_runs_a_current_python_with_retries_an_on_failure_queue_and_its_own_logs(synthesized: Synthesized) -> None:
    (function,) = [p for k, p in synthesized.of_type("AWS::Lambda::Function").items() if k.startswith("ProducerFunction")]
    assert function["Runtime"] == "python3.14" and function["Architectures"] == ["arm64"]
    assert function["Handler"] == "lambdas.producer.handler.handler"
    assert "LoggingConfig" in function and function["LoggingConfig"]["LogGroup"]["Ref"].startswith("ProducerLogs")
    layer = json.dumps(function["Layers"])
    assert "AWSLambdaPowertoolsPythonV3-python314-arm64" in layer and POWERTOOLS_LAYER.rsplit(":", 1)[1] in layer
    env = function["Environment"]["Variables"]
    assert env["DROPQ_ENDPOINT_URL"] == "" and env[PREFIX] == "dropq-"
    synthesized.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "MaximumRetryAttempts": TOPOLOGY.producer_retries,
            "DestinationConfig": {
                "OnFailure": {"Destination": {"Fn::GetAtt": [Match.string_like_regexp("QueuesProducerFailures"), "Arn"]}}
            },
        },
    )
    log_groups = synthesized.of_type("AWS::Logs::LogGroup")
    assert all(group.get("RetentionInDays") for group in log_groups.values()), "every log group has a retention"


def test_the_producer_takes_the_inbox_events_in_batches_reporting_partial_failures_which_come_back_then_park(
    synthesized: Synthesized,
) -> None:
    from infra.local.provision import inbox_queue_attributes

    inbox = TOPOLOGY.inbox_events
    (mapping,) = synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
    assert mapping["FunctionName"]["Ref"].startswith("ProducerFunction")
    assert mapping["EventSourceArn"]["Fn::GetAtt"][0].startswith("QueuesInboxEvents")
    assert mapping["BatchSize"] == inbox.batch_size == 10 and mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "MaximumBatchingWindowInSeconds" not in mapping, "no window: a lone file is handled at once"
    assert "ScalingConfig" not in mapping, "the default profile reserves no concurrency, so the mapping has no cap"
    (function,) = [p for k, p in synthesized.of_type("AWS::Lambda::Function").items() if k.startswith("ProducerFunction")]
    assert function["Timeout"] == inbox.function_timeout_seconds
    queues = {p["QueueName"]: p for p in synthesized.of_type("AWS::SQS::Queue").values()}
    queue = queues[f"dropq-{inbox.queue}"]
    local = inbox_queue_attributes(inbox, "arn")
    assert queue["VisibilityTimeout"] == int(local["VisibilityTimeout"]) == 6 * function["Timeout"]
    assert queue["MessageRetentionPeriod"] == int(local["MessageRetentionPeriod"])
    assert queue["RedrivePolicy"]["maxReceiveCount"] == json.loads(local["RedrivePolicy"])["maxReceiveCount"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0].startswith("QueuesProducerFailures")
    assert queue["SqsManagedSseEnabled"]
    # S3 may send to it, from this bucket only
    policies = [
        p["PolicyDocument"] for p in synthesized.of_type("AWS::SQS::QueuePolicy").values() if "QueuesInboxEvents" in json.dumps(p["Queues"])
    ]
    (document,) = policies
    (allow,) = [s for s in document["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"} and "aws:SourceArn" in json.dumps(allow["Condition"])


def producer_asset(synthesized: Synthesized) -> Path:
    """The producer's staged code asset, found through the cloud assembly's asset manifest."""
    (function,) = [p for k, p in synthesized.of_type("AWS::Lambda::Function").items() if k.startswith("ProducerFunction")]
    asset_hash = json.dumps(function["Code"]["S3Key"]).split(".zip")[0].strip('"')
    manifest = json.loads((synthesized.outdir / f"{synthesized.stack.stack_name}.assets.json").read_text())
    return synthesized.outdir / manifest["files"][asset_hash]["source"]["path"]


def test_producer_asset_is_small_and_carries_no_celery(synthesized: Synthesized) -> None:
    asset = producer_asset(synthesized)
    files = sorted(str(p.relative_to(asset)) for p in asset.rglob("*.py"))
    assert files == sorted(PRODUCER_MODULES)
    # dropq's own source only (the core whole and the producer, about 170 KB, the ledger and the topology the largest):
    # no library rides along (kombu alone is 2 MB).
    assert sum(p.stat().st_size for p in asset.rglob("*") if p.is_file()) < 250_000


def test_producer_handler_imports_from_its_asset_alone_without_worker_dependencies(synthesized: Synthesized, tmp_path: Path) -> None:
    """Run in a fresh interpreter: the asset first on sys.path, Celery and the pipelines' libraries made unimportable."""
    asset = producer_asset(synthesized)
    probe = f"""
import sys
sys.path.insert(0, {str(asset)!r})
for blocked in ("celery", "kombu", "pycurl", "PIL", "pyarrow", "click", "moto", "tasks"):
    sys.modules[blocked] = None
import lambdas.producer.handler as handler
ours = ("dropq", "lambdas", "infra")
loaded = [m.__file__ for name, m in sys.modules.items() if name.split(".")[0] in ours and getattr(m, "__file__", None)]
assert all(f.startswith({str(asset)!r}) for f in loaded), loaded
print(handler.handler.__name__)
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "handler"


# What a Lambda Python runtime has beside the function's code: boto3 (the runtime's) and, as a layer, Powertools
# (infra/cloud/producer.py: POWERTOOLS_LAYER, version 3.31.1).
LAMBDA_RUNTIME_PACKAGES = ("boto3", "aws-lambda-powertools==3.31.1")


def test_the_producer_asset_alone_on_a_clean_python_with_the_runtimes_packages_handles_an_event(
    synthesized: Synthesized, tmp_path: Path
) -> None:
    # Given a fresh virtualenv holding what Lambda provides and nothing else, and the producer's asset as its code
    import os

    from dropq.ledger import ledger_for
    from dropq.settings import local_settings
    from infra.local.provision import provision
    from infra.local.server import MotoServer, free_port
    from tests.conftest import drain, load_event

    venv = tmp_path / "lambda"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", *LAMBDA_RUNTIME_PACKAGES], capture_output=True, text=True, timeout=600
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    port = free_port()
    settings = local_settings(port=port, state_dir=str(tmp_path / "state"))
    server = MotoServer(port, tmp_path / "moto.log")
    server.start()
    try:
        provision(settings)
        key = "incoming/holiday photos/café (1).jpg"
        etag = settings.client("s3").put_object(Bucket=settings.bucket, Key=key, Body=b"\xff\xd8 a photo")["ETag"].strip('"')
        event = load_event("s3_put.json")
        event["Records"][0]["s3"]["object"].update(eTag=etag, size=13)
        (tmp_path / "event.json").write_text(json.dumps(event))
        # When the handler runs there, on the recorded event, as Lambda runs it
        run = f"""
import json, sys
sys.path.insert(0, {str(producer_asset(synthesized))!r})
import lambdas.producer.handler as producer
print(json.dumps(producer.handler(json.load(open({str(tmp_path / "event.json")!r})), None)))
"""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        result = subprocess.run(
            [str(venv / "bin" / "python"), "-c", run],
            cwd=tmp_path,
            env={**env, **settings.environment()},
            capture_output=True,
            text=True,
            timeout=60,
        )
        # Then it enqueued the file's task, writing nothing to the ledger (the file's claim creates its entry)
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {"enqueued": 1, "ignored": 0}
        assert ledger_for(settings).get(settings.bucket, key) is None
        assert len(drain(settings, "default")) == 1
        # With message signing on, the runtime lacks cryptography: the handler says so, instead of failing obscurely
        from tests.signing_keys import make_identity

        signing_key, cert = make_identity(tmp_path / "trusted", "dropq")
        signing = {"DROPQ_SIGNING_KEY": str(signing_key), "DROPQ_SIGNING_CERT": str(cert), "DROPQ_SIGNING_CERT_STORE": str(cert.parent)}
        refused = subprocess.run(
            [str(venv / "bin" / "python"), "-c", run],
            cwd=tmp_path,
            env={**env, **settings.environment(), **signing},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode != 0 and "needs the cryptography package" in refused.stderr, refused.stderr[-2000:]
        # With signing on as a stack turns it on (a secret of its keys), the asset as bundled then (with cryptography's
        # wheels; here for this Python, in AWS for the function's) signs what it enqueues, as Celery's workers check it
        from celery.security.certificate import FSCertStore
        from celery.security.serialization import SecureSerializer

        from dropq.protocol import decode_task_message
        from infra.cloud.bundling import bundle_producer

        signed_asset = tmp_path / "signed-asset"
        bundle_producer(signed_asset, signing=True)
        identity = {"key": signing_key.read_text(), "certificate": cert.read_text()}
        settings.client("secretsmanager").create_secret(Name="dropq/signing", SecretString=json.dumps(identity))
        signed_key = "incoming/signed.jpg"
        etag = settings.client("s3").put_object(Bucket=settings.bucket, Key=signed_key, Body=b"\xff\xd8 signed")["ETag"].strip('"')
        event["Records"][0]["s3"]["object"].update(key=signed_key, eTag=etag, size=10)
        (tmp_path / "event.json").write_text(json.dumps(event))
        signed = subprocess.run(
            [str(venv / "bin" / "python"), "-c", run.replace(str(producer_asset(synthesized)), str(signed_asset))],
            cwd=tmp_path,
            env={**env, **settings.environment(), "DROPQ_SIGNING_SECRET": "dropq/signing"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert signed.returncode == 0, signed.stderr[-3000:]
        assert json.loads(signed.stdout.strip().splitlines()[-1]) == {"enqueued": 1, "ignored": 0}
        (message,) = (m["Body"] for m in drain(settings, "default"))
        envelope = json.loads(base64.b64decode(message))
        reader = SecureSerializer(cert_store=FSCertStore(str(cert.parent)), digest="sha256")
        assert reader.deserialize(base64.b64decode(envelope["body"]))[1]["key"] == signed_key
        assert decode_task_message(message)["body"]["kwargs"]["etag"] == etag
    finally:
        server.stop()


def test_queues_have_their_topology_attributes_a_dlq_sse_and_a_tls_only_policy(synthesized: Synthesized) -> None:
    queues = {p["QueueName"]: p for p in synthesized.of_type("AWS::SQS::Queue").values()}
    for spec in TOPOLOGY.queues:
        queue, dlq = queues[f"dropq-{spec.name}"], queues[f"dropq-{spec.dlq_name}"]
        assert queue["VisibilityTimeout"] == spec.visibility_timeout
        assert queue["MessageRetentionPeriod"] == spec.retention_seconds < dlq["MessageRetentionPeriod"] == spec.dlq_retention_seconds
        assert queue["RedrivePolicy"]["maxReceiveCount"] == spec.max_receive_count
        assert queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0].startswith(f"QueuesDeadLetters{spec.name}")
    assert all(q["SqsManagedSseEnabled"] for q in queues.values())
    policies = synthesized.of_type("AWS::SQS::QueuePolicy").values()
    assert len(policies) == len(queues)
    assert all(denies_insecure_transport(p) for p in policies)


def test_tables_are_on_demand_with_ttl_and_point_in_time_recovery(synthesized: Synthesized) -> None:
    tables = {p["TableName"]: p for p in synthesized.of_type("AWS::DynamoDB::Table").values()}
    for spec in (TOPOLOGY.ledger_table, TOPOLOGY.results_table):
        table = tables[f"dropq-{spec.name}"]
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
        assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def pool_resources(synthesized: Synthesized, kind: str, pool: WorkerPool) -> dict[str, dict[str, Any]]:
    """The resources of a type that the CDK construct of one pool created (logical ids start with Pool<name>)."""
    return {k: props for k, props in synthesized.of_type(kind).items() if k.startswith(f"Pool{pool.name}")}


def test_each_pool_is_a_fargate_service_running_the_worker_command_with_its_size_and_stop_timeout(synthesized: Synthesized) -> None:
    assert len(synthesized.of_type("AWS::ECS::Service")) == len(TOPOLOGY.pools) > 1
    for pool in TOPOLOGY.pools:
        (task,) = pool_resources(synthesized, "AWS::ECS::TaskDefinition", pool).values()
        assert (task["Cpu"], task["Memory"]) == (str(pool.cpu), str(pool.memory_mib))
        assert task["RequiresCompatibilities"] == ["FARGATE"]
        (container,) = task["ContainerDefinitions"]
        assert container["Command"] == ["celery", *worker_arguments(pool, f"{pool.name}@%h")]
        assert container["StopTimeout"] == pool.stop_timeout
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert {**WORKER_ENVIRONMENT, POOL: pool.name}.items() <= env.items()
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
        (service,) = pool_resources(synthesized, "AWS::ECS::Service", pool).values()
        assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "ENABLED"
        if pool.spot:
            assert service["CapacityProviderStrategy"] == [
                {"CapacityProvider": "FARGATE", "Base": 1, "Weight": 0},
                {"CapacityProvider": "FARGATE_SPOT", "Weight": 1},
            ], "the first task on demand, the rest on Spot"
        else:
            assert "CapacityProviderStrategy" not in service, "on demand unless the pool asks for Spot"
        assert task["RuntimePlatform"]["CpuArchitecture"] == pool.architecture.upper()
        (group,) = pool_resources(synthesized, "AWS::EC2::SecurityGroup", pool).values()
        assert "SecurityGroupIngress" not in group
    (cluster,) = synthesized.of_type("AWS::ECS::Cluster").values()
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]


def test_each_pool_scales_on_its_own_queues_backlog_per_task_including_in_flight_and_wakes_from_zero(synthesized: Synthesized) -> None:
    queue_ids = {spec["QueueName"]: k for k, spec in synthesized.of_type("AWS::SQS::Queue").items()}
    alarms = synthesized.of_type("AWS::CloudWatch::Alarm").values()
    for pool in TOPOLOGY.pools:
        policy = scaling_policy(pool)
        (target,) = pool_resources(synthesized, "AWS::ApplicationAutoScaling::ScalableTarget", pool).values()
        assert (target["MinCapacity"], target["MaxCapacity"]) == (pool.min_workers, pool.max_workers) == (0, pool.max_workers)
        assert target["ScalableDimension"] == "ecs:service:DesiredCount"
        policies = {p["PolicyType"]: p for p in pool_resources(synthesized, "AWS::ApplicationAutoScaling::ScalingPolicy", pool).values()}

        tracking = policies["TargetTrackingScaling"]["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["TargetValue"] == pool.backlog_per_worker
        assert (tracking["ScaleOutCooldown"], tracking["ScaleInCooldown"]) == (policy.scale_out_cooldown, policy.scale_in_cooldown)
        queries = {q["Id"]: q for q in tracking["CustomizedMetricSpecification"]["Metrics"]}
        names = {q["MetricStat"]["Metric"]["MetricName"] for q in queries.values() if "MetricStat" in q}
        # In-flight messages count: a pool never scales to zero under a running task (QueueProcessingFargateService counts visible only).
        assert names == {"ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible", "RunningTaskCount"}
        watched = {
            d["Value"]["Fn::GetAtt"][0]
            for q in queries.values()
            if "MetricStat" in q
            for d in q["MetricStat"]["Metric"]["Dimensions"]
            if d["Name"] == "QueueName"
        }
        assert watched == {queue_ids[f"dropq-{name}"] for name in pool.queues}, f"pool {pool.name} scales on its own queues only"
        ids = [f"{kind}{i}" for i in range(len(pool.queues)) for kind in ("visible", "inflight")]
        assert queries["backlog"]["Expression"] == backlog_expression(ids)
        assert queries["backlog_per_task"]["Expression"] == BACKLOG_PER_WORKER_EXPRESSION
        assert [q["Id"] for q in queries.values() if q["ReturnData"]] == ["backlog_per_task"]

        wake = policies["StepScaling"]["StepScalingPolicyConfiguration"]
        assert wake["AdjustmentType"] == "ChangeInCapacity" and wake["StepAdjustments"] == [
            {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}
        ]
        (wake_alarm,) = [
            a
            for a in alarms
            if any(m.get("Expression") == WAKE_EXPRESSION for m in a.get("Metrics", []))
            and a["AlarmActions"][0]["Ref"].startswith(f"Pool{pool.name}Wake")
        ]
        assert wake_alarm["Threshold"] == 1


def test_spot_and_architecture_are_pool_settings_and_each_architecture_gets_its_own_image(tmp_path: Path) -> None:
    import dataclasses

    import aws_cdk as cdk

    from infra.cloud.stack import DropqStack

    # Given the batch pools on Spot (as shipped) and the urgent pool on ARM
    assert [p.spot for p in TOPOLOGY.pools] == [True, True, False], "as shipped: batch pools on Spot, urgent on demand"
    urgent = dataclasses.replace(TOPOLOGY.pools[2], architecture="arm64")
    topology = dataclasses.replace(TOPOLOGY, pools=(*TOPOLOGY.pools[:2], urgent))
    app = cdk.App(outdir=str(tmp_path))
    stack = DropqStack(app, "mixed", topology=topology)
    app.synth()
    template = json.loads((tmp_path / "mixed.template.json").read_text())
    tasks = {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::ECS::TaskDefinition"}
    architectures = {k.split("Task")[0]: t["RuntimePlatform"]["CpuArchitecture"] for k, t in tasks.items()}
    assert architectures == {"Pooldefault": "X86_64", "Poolheavy": "X86_64", "Poolurgent": "ARM64"}
    images = {json.dumps(t["ContainerDefinitions"][0]["Image"]) for t in tasks.values()}
    assert len(images) == 2, "one image per architecture"
    manifest = json.loads((tmp_path / f"{stack.stack_name}.assets.json").read_text())
    platforms = sorted(image["source"].get("platform", "") for image in manifest["dockerImages"].values())
    assert platforms == ["linux/amd64", "linux/arm64"]


def test_roles_get_only_what_they_use(synthesized: Synthesized) -> None:
    worker = statements(synthesized, "TaskRole")
    producer = statements(synthesized, "ProducerRole")
    everything = [a for s in worker + producer for a in actions(s)]
    assert not [a for a in everything if a == "*" or a.endswith(":*")], "no wildcard actions"
    assert not [a for s in producer for a in actions(s) if a.startswith("dynamodb:")], "the producer writes no ledger entry"
    assert {a for s in producer for a in actions(s)} == {
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        # its event source mapping, on the inbox events queue alone
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
    }
    consuming = [s for s in producer if "sqs:ReceiveMessage" in actions(s)]
    assert consuming and all(json.dumps(s["Resource"]).count("QueuesInboxEvents") == 1 for s in consuming)
    s3_statements = [s for s in worker if any(a.startswith("s3:") for a in actions(s))]
    by_resource = {json.dumps(s["Resource"]): set(actions(s)) for s in s3_statements}
    assert sorted(by_resource.values(), key=sorted) == sorted(
        [{"s3:GetObject"}, {"s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"}, {"s3:PutObject"}], key=sorted
    )
    assert any(TOPOLOGY.reports_prefix in r for r, granted in by_resource.items() if granted == {"s3:PutObject"}), "reports: write only"
    assert any(TOPOLOGY.inbox_prefix in r for r in by_resource) and any(TOPOLOGY.output_prefix in r for r in by_resource)
    protections = [s for s in worker if any(a.startswith("ecs:") for a in actions(s))]
    assert len(protections) == len(TOPOLOGY.pools), "each pool's task role protects its own tasks"
    for protection in protections:
        assert set(actions(protection)) == {"ecs:GetTaskProtection", "ecs:UpdateTaskProtection"}
        assert ":task/" in json.dumps(protection["Resource"]), "only tasks, of the stack's cluster"
    managed = [k for k, props in synthesized.of_type("AWS::IAM::Role").items() if props.get("ManagedPolicyArns")]
    assert [k for k in managed if not k.startswith("BucketNotificationsHandler")] == [], "only CDK's own deploy-time handler"


def test_alarms_watch_every_dead_letter_queue_message_age_and_producer_errors(synthesized: Synthesized) -> None:
    alarms = list(synthesized.of_type("AWS::CloudWatch::Alarm").values())
    metric_names = [a.get("MetricName") for a in alarms]
    dead_letter_queues = len(TOPOLOGY.queues) + 1  # each DLQ and the producer's failure queue
    assert metric_names.count("ApproximateNumberOfMessagesVisible") == dead_letter_queues
    assert metric_names.count("ApproximateAgeOfOldestMessage") == len(TOPOLOGY.queues) + 1, "each work queue and the inbox events"
    (inbox,) = [a for a in alarms if "InboxEvents" in json.dumps(a.get("Dimensions", []))]
    assert inbox["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert "Errors" in metric_names
    assert all(a["AlarmActions"] for a in alarms)
    synthesized.template.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def dashboard_widgets(synthesized: Synthesized) -> list[dict[str, Any]]:
    """The dashboard's widgets, with CloudFormation's references (region, queue names) as "<ref>"."""
    (dashboard,) = synthesized.of_type("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["DashboardBody"]["Fn::Join"][1]
    return json.loads("".join(part if isinstance(part, str) else "<ref>" for part in parts))["widgets"]


def test_the_dashboard_charts_each_pipelines_emf_metrics_and_each_pools_queue_depth(synthesized: Synthesized) -> None:
    widgets = {w["properties"]["title"]: w["properties"].get("metrics", []) for w in dashboard_widgets(synthesized)}
    # The dimensions the workers publish with (dropq/observe.py): this deployment's, and the pipeline's
    service = deployment(synthesized.stack.settings.prefix)

    def charted(title: str) -> set[tuple[str, str, str, str]]:
        """(metric, statistic, deployment, pipeline) of a widget's metrics in the dropq namespace."""
        found = set()
        for namespace, name, *dimensions, options in widgets[title]:
            assert namespace == "dropq", title
            by_name = dict(zip(dimensions[::2], dimensions[1::2], strict=True))
            found.add((name, options["stat"], by_name["deployment"], by_name["pipeline"]))
        return found

    for pipeline in dict.fromkeys(route.pipeline for route in TOPOLOGY.routes):
        assert charted(f"{pipeline}: duration of a succeeded file (ms)") == {
            ("Duration", "p50", service, pipeline),
            ("Duration", "p95", service, pipeline),
        }
        assert charted(f"{pipeline}: files") == {("Succeeded", "Sum", service, pipeline), ("Failed", "Sum", service, pipeline)}
        assert charted(f"{pipeline}: input bytes") == {("Bytes", "Sum", service, pipeline)}
    for pool in TOPOLOGY.pools:
        depth = [metric[1] for metric in widgets[f"{pool.name}: queue depth"]]
        assert depth == ["ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible"] * len(pool.queues)


def test_outputs_name_the_bucket_queues_tables_and_dashboard(synthesized: Synthesized) -> None:
    outputs = synthesized.template.to_json()["Outputs"]
    expected = {
        "Bucket",
        "Inbox",
        "Prefix",
        "LedgerTable",
        "ResultsTable",
        "Dashboard",
        "ProducerFailuresQueueUrl",
        "QueueDefaultUrl",
        "QueueDefaultDlqUrl",
    }
    assert expected <= outputs.keys()


def test_cfn_lint_finds_no_error(synthesized: Synthesized) -> None:
    from cfnlint.api import lint_all

    template = (synthesized.outdir / f"{synthesized.stack.stack_name}.template.json").read_text()
    matches = lint_all(template)
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def checkov(template: Path) -> dict[str, Any]:
    """checkov's report on a template (make test installs it in a venv of its own and names it in DROPQ_CHECKOV)."""
    import os

    tool = Path(os.environ.get("DROPQ_CHECKOV") or Path(__file__).resolve().parents[2] / ".venv-scan" / "bin" / "checkov")
    assert tool.exists(), f"the template's second scanner is checkov, at {tool}: `make test` installs it"
    run = subprocess.run(
        [str(tool), "-f", str(template), "--framework", "cloudformation", "--output", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=template.parent,
    )
    report = json.loads(run.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.parametrize("profile", ["default", "production"])
def test_checkov_finds_nothing_unacknowledged_and_each_acknowledgement_says_why(profile: str, tmp_path: Path) -> None:
    import aws_cdk as cdk

    from infra.cloud.app import build_app, cdk_json_context

    app, stack = build_app(cdk.App(outdir=str(tmp_path), context={**cdk_json_context(), "profile": profile}))
    app.synth()
    report = checkov(tmp_path / f"{stack.stack_name}.template.json")
    failed = [f"{f['check_id']} {f['check_name']} on {f['resource']}" for f in report["results"]["failed_checks"]]
    assert report["summary"]["passed"] > 100 and failed == []
    skipped = report["results"]["skipped_checks"]
    assert skipped and all(len((s.get("check_result", {}).get("suppress_comment") or "").split()) >= 5 for s in skipped), skipped


def test_cdk_nag_reports_no_unacknowledged_error(synthesized: Synthesized) -> None:
    """The session's synthesis ran cdk-nag's AwsSolutions pack and raised on any unacknowledged error; its report agrees."""
    report = synthesized.outdir / "validation-report.json"
    plugins = json.loads(report.read_text())["pluginReports"] if report.exists() else []
    assert [v for p in plugins for v in p["violations"] if v["severity"] == "error"] == []


def test_cdk_nag_fails_synthesis_on_a_resource_breaking_its_rules(tmp_path: Path) -> None:
    """The checks really run: an unencrypted, unlogged bucket added to the app makes `cdk synth` fail."""
    import aws_cdk as cdk
    import pytest
    from aws_cdk import aws_s3 as s3

    from infra.cloud.app import build_app

    app, stack = build_app(cdk.App(outdir=str(tmp_path)))
    s3.Bucket(stack, "Careless")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert "AwsSolutions-S1" in rules and "AwsSolutions-S10" in rules


def test_an_acknowledgement_without_a_reason_is_refused() -> None:
    import aws_cdk as cdk
    import pytest

    from infra.cloud.nag import acknowledge

    with pytest.raises(ValueError, match="reason"):
        acknowledge(cdk.Stack(cdk.App(), "s"), "AwsSolutions-S1", "ok")


def test_each_schedule_is_an_eventbridge_schedule_invoking_the_producer_with_its_scheduled_time(synthesized: Synthesized) -> None:
    from infra.cloud.schedules import SCHEDULED_TIME

    schedules = list(synthesized.of_type("AWS::Scheduler::Schedule").values())
    assert sorted(s["ScheduleExpression"] for s in schedules) == sorted(s.expression for s in TOPOLOGY.schedules)
    (producer,) = [k for k, props in synthesized.of_type("AWS::Lambda::Function").items() if k.startswith("ProducerFunction")]
    for schedule in schedules:
        assert schedule["ScheduleExpressionTimezone"] == "UTC" and schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
        target = schedule["Target"]
        assert target["Arn"] == {"Fn::GetAtt": [producer, "Arn"]}
        payload = json.loads(target["Input"])
        assert payload["scheduled_time"] == SCHEDULED_TIME and payload["dropq_schedule"] in {s.name for s in TOPOLOGY.schedules}
        assert "DeadLetterConfig" in target, "a firing EventBridge cannot deliver is kept, not dropped"
    scheduler_role = statements(synthesized, "SchedulesRole")
    granted = {a for s in scheduler_role for a in actions(s)}
    assert granted == {"lambda:InvokeFunction", "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}


def test_a_webhook_turned_on_by_context_gives_workers_its_url_and_a_generated_secret(tmp_path: Path) -> None:
    import aws_cdk as cdk

    from infra.cloud.app import build_app, cdk_json_context
    from infra.cloud.webhooks import context_key

    context = {**cdk_json_context(), context_key("notify"): "https://hooks.example.com/dropq/"}
    app, stack = build_app(cdk.App(outdir=str(tmp_path), context=context))
    app.synth()  # cdk-nag's checks pass with the secret
    template = json.loads((tmp_path / f"{stack.stack_name}.template.json").read_text())
    (secret_id,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::SecretsManager::Secret"]
    tasks = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    assert len(tasks) == len(TOPOLOGY.pools)
    for task in tasks:
        (container,) = task["ContainerDefinitions"]
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert env["DROPQ_WEBHOOK_NOTIFY_URL"] == "https://hooks.example.com/dropq/"
        assert container["Secrets"] == [{"Name": "DROPQ_WEBHOOK_NOTIFY_SECRET", "ValueFrom": {"Ref": secret_id}}]
    assert "WebhookNotifySecret" in template["Outputs"]


def test_message_signing_turned_on_by_context_reads_its_secret_everywhere_and_bundles_cryptography_for_the_runtime(
    tmp_path: Path,
) -> None:
    import aws_cdk as cdk

    from infra.cloud.app import build_app, cdk_json_context
    from infra.cloud.producer import BUNDLE_TARGET
    from infra.cloud.signing import CONTEXT_KEY

    # Given a deployment that names its signing secret
    app, stack = build_app(cdk.App(outdir=str(tmp_path), context={**cdk_json_context(), CONTEXT_KEY: "dropq/signing"}))
    app.synth()  # cdk-nag's checks pass with it
    synthesized = Synthesized(
        stack=stack, template=Template.from_json(json.loads((tmp_path / f"{stack.stack_name}.template.json").read_text())), outdir=tmp_path
    )
    # Then the producer and every worker are told its name
    (function,) = [p for k, p in synthesized.of_type("AWS::Lambda::Function").items() if k.startswith("ProducerFunction")]
    assert function["Environment"]["Variables"]["DROPQ_SIGNING_SECRET"] == "dropq/signing"
    tasks = synthesized.of_type("AWS::ECS::TaskDefinition").values()
    assert len(tasks) == len(TOPOLOGY.pools)
    for task in tasks:
        env = {e["Name"]: e["Value"] for e in task["ContainerDefinitions"][0]["Environment"]}
        assert env["DROPQ_SIGNING_SECRET"] == "dropq/signing" and not env.get("DROPQ_SIGNING_KEY")
    # And each of their roles may read that secret, and only the roles that run them
    readers = []
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        for statement in policy["PolicyDocument"]["Statement"]:
            if "secretsmanager:GetSecretValue" in statement["Action"]:
                assert "dropq/signing-" in json.dumps(statement["Resource"])
                readers += [role["Ref"] for role in policy["Roles"]]
    assert len(readers) == len(TOPOLOGY.pools) + 1
    assert any(r.startswith("ProducerRole") for r in readers) and sum(r.startswith("Pool") for r in readers) == len(TOPOLOGY.pools)
    # And the producer's asset carries cryptography, built for the function's runtime and architecture
    asset = producer_asset(synthesized)
    assert (asset / "cryptography" / "__init__.py").is_file()
    assert function["Runtime"] == f"python{BUNDLE_TARGET.python_version}" and function["Architectures"] == ["arm64"]
    native = [p.name for p in asset.rglob("*.so")]
    assert native and all("aarch64" in name or "abi3" in name for name in native), native
    assert any(name.endswith(f"cpython-{BUNDLE_TARGET.python_version.replace('.', '')}-aarch64-linux-gnu.so") for name in native)


def test_without_context_no_webhook_is_on_and_no_secret_is_made(synthesized: Synthesized) -> None:
    assert synthesized.of_type("AWS::SecretsManager::Secret") == {}
    for task in synthesized.of_type("AWS::ECS::TaskDefinition").values():
        assert not any(e["Name"].startswith("DROPQ_WEBHOOK_") for e in task["ContainerDefinitions"][0]["Environment"])


def test_the_ledgers_indexes_copy_keys_only_and_the_default_profile_provisions_nothing_ahead(synthesized: Synthesized) -> None:
    tables = {p["TableName"]: p for p in synthesized.of_type("AWS::DynamoDB::Table").values()}
    ledger = tables[f"dropq-{TOPOLOGY.ledger_table.name}"]
    indexes = {i["IndexName"]: i for i in ledger["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"recent", "failed"}
    assert all(i["Projection"] == {"ProjectionType": "KEYS_ONLY"} for i in indexes.values()), "a renewal must cost no index write"
    assert "WarmThroughput" not in ledger
    (function,) = [p for p in synthesized.of_type("AWS::Lambda::Function").values() if p.get("Handler", "").startswith("lambdas.")]
    assert "ReservedConcurrentExecutions" not in function


def test_the_production_profile_prewarms_the_ledger_reserves_the_producers_concurrency_and_tells_every_process(
    tmp_path: Path,
) -> None:
    import aws_cdk as cdk

    from dropq.topology import PRODUCTION
    from infra.cloud.app import build_app, cdk_json_context

    app, stack = build_app(cdk.App(outdir=str(tmp_path), context={**cdk_json_context(), "profile": "production"}))
    app.synth()  # cdk-nag's checks pass on it too
    template = json.loads((tmp_path / f"{stack.stack_name}.template.json").read_text())
    resources = [r for r in template["Resources"].values()]
    ledger = next(
        r["Properties"] for r in resources if r["Type"] == "AWS::DynamoDB::Table" and r["Properties"]["TableName"].endswith("ledger")
    )
    capacity = PRODUCTION.capacity
    assert ledger["WarmThroughput"] == {
        "ReadUnitsPerSecond": capacity.ledger_warm_reads,
        "WriteUnitsPerSecond": capacity.ledger_warm_writes,
    }
    assert all(i["WarmThroughput"] == {"WriteUnitsPerSecond": capacity.index_warm_writes} for i in ledger["GlobalSecondaryIndexes"])
    function = next(r["Properties"] for r in resources if r["Type"] == "AWS::Lambda::Function" and "Handler" in r["Properties"])
    assert function["ReservedConcurrentExecutions"] == capacity.producer_reserved_concurrency
    (mapping,) = [r["Properties"] for r in resources if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": capacity.producer_reserved_concurrency}, "never throttled by itself"
    assert function["Environment"]["Variables"]["DROPQ_PROFILE"] == "production"
    targets = [r["Properties"] for r in resources if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"]
    assert max(t["MaxCapacity"] for t in targets) == PRODUCTION.pools[0].max_workers
    for task in (r["Properties"] for r in resources if r["Type"] == "AWS::ECS::TaskDefinition"):
        (container,) = task["ContainerDefinitions"]
        assert {"Name": "DROPQ_PROFILE", "Value": "production"} in container["Environment"]


def test_an_unknown_profile_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    import aws_cdk as cdk
    import pytest

    from infra.cloud.app import build_app, cdk_json_context

    with pytest.raises(ValueError, match="'huge' names no topology profile; known: default, production"):
        build_app(cdk.App(outdir=str(tmp_path), context={**cdk_json_context(), "profile": "huge"}))


def test_the_ledger_on_provisioned_capacity_autoscales_the_table_and_every_index(tmp_path: Path) -> None:
    import aws_cdk as cdk

    from dropq.topology import Provisioned
    from infra.cloud.app import build_app, cdk_json_context

    app, stack = build_app(cdk.App(outdir=str(tmp_path), context={**cdk_json_context(), "ledger-capacity": "provisioned"}))
    app.synth()  # cdk-nag's checks pass on it too
    template = json.loads((tmp_path / f"{stack.stack_name}.template.json").read_text())
    resources = list(template["Resources"].values())
    tables = {r["Properties"]["TableName"]: r["Properties"] for r in resources if r["Type"] == "AWS::DynamoDB::Table"}
    ledger, results = tables[f"dropq-{TOPOLOGY.ledger_table.name}"], tables[f"dropq-{TOPOLOGY.results_table.name}"]
    floor = Provisioned()
    assert ledger["ProvisionedThroughput"] == {"ReadCapacityUnits": floor.min_reads, "WriteCapacityUnits": floor.min_writes}
    assert "BillingMode" not in ledger or ledger["BillingMode"] == "PROVISIONED"
    assert all(i["ProvisionedThroughput"]["WriteCapacityUnits"] == floor.min_writes for i in ledger["GlobalSecondaryIndexes"])
    assert results["BillingMode"] == "PAY_PER_REQUEST", "chord parts' results stay on demand"

    targets = [r["Properties"] for r in resources if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"]
    dynamo = [t for t in targets if t["ServiceNamespace"] == "dynamodb"]
    dimensions = sorted(t["ScalableDimension"] for t in dynamo)
    indexes = len(TOPOLOGY.ledger_table.indexes)
    assert dimensions == sorted(
        ["dynamodb:table:ReadCapacityUnits", "dynamodb:table:WriteCapacityUnits"]
        + ["dynamodb:index:ReadCapacityUnits", "dynamodb:index:WriteCapacityUnits"] * indexes
    )
    assert {t["MaxCapacity"] for t in dynamo if t["ScalableDimension"].endswith("WriteCapacityUnits")} == {floor.max_writes}
    policies = [r["Properties"] for r in resources if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"]
    tracked = [p["TargetTrackingScalingPolicyConfiguration"] for p in policies if "DynamoDB" in json.dumps(p)]
    assert len(tracked) == len(dynamo) and {t["TargetValue"] for t in tracked} == {floor.target_percent}


def test_a_ledger_capacity_that_is_not_known_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    import aws_cdk as cdk
    import pytest

    from infra.cloud.app import build_app, cdk_json_context

    with pytest.raises(ValueError, match="'reserved' is not one of: on-demand, provisioned"):
        build_app(cdk.App(outdir=str(tmp_path), context={**cdk_json_context(), "ledger-capacity": "reserved"}))


def test_your_pipeline_modules_reach_every_worker_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    import aws_cdk as cdk
    import pytest

    from infra.cloud.app import build_app, cdk_json_context

    context = {**cdk_json_context(), "pipeline-modules": "mypackage.pipelines, other.steps"}
    app, stack = build_app(cdk.App(outdir=str(tmp_path), context=context))
    app.synth()
    template = json.loads((tmp_path / f"{stack.stack_name}.template.json").read_text())
    tasks = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    assert tasks and all(
        {"Name": "DROPQ_PIPELINE_MODULES", "Value": "mypackage.pipelines,other.steps"} in t["ContainerDefinitions"][0]["Environment"]
        for t in tasks
    )
    with pytest.raises(ValueError, match="-c pipeline-modules: 'my-package' is not a Python module path"):
        build_app(cdk.App(outdir=str(tmp_path / "bad"), context={**cdk_json_context(), "pipeline-modules": "my-package"}))

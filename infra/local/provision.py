"""Create the topology's resources in the local cloud, the way the CDK stack declares them in AWS."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from dropq.deployment import local_deployment
from dropq.settings import Settings
from dropq.topology import SQS_MAX_RETENTION, SQS_MAX_WAIT_SECONDS, InboxEvents, QueueSpec, TableSpec

# What stands for Lambda's own queue of asynchronous invocations (a schedule's firing): the local Lambda runtime takes
# them from here with Lambda's async-invoke contract. S3's notifications go to the inbox events queue, as in AWS.
LOCAL_INVOCATIONS_QUEUE = "local-invocations"


def dlq_attributes(spec: QueueSpec) -> dict[str, str]:
    """SQS attributes of a work queue's dead-letter queue."""
    return {"MessageRetentionPeriod": str(spec.dlq_retention_seconds)}


def queue_attributes(spec: QueueSpec, dlq_arn: str) -> dict[str, str]:
    """SQS attributes of a work queue (shared with the stack's tests so the two cannot drift)."""
    return {
        "VisibilityTimeout": str(spec.visibility_timeout),
        "MessageRetentionPeriod": str(spec.retention_seconds),
        "ReceiveMessageWaitTimeSeconds": str(SQS_MAX_WAIT_SECONDS),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count}),
    }


def _create_queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def provision_queues(sqs: Any, settings: Settings) -> dict[str, str]:
    """Create each work queue with its dead-letter queue, and the producer's failure queue; return topology name -> ARN."""
    topology, name = settings.topology, settings.physical_name
    arns: dict[str, str] = {}
    for spec in topology.queues:
        _, dlq_arn = _create_queue(sqs, name(spec.dlq_name), dlq_attributes(spec))
        _, arns[spec.name] = _create_queue(sqs, name(spec.name), queue_attributes(spec, dlq_arn))
        arns[spec.dlq_name] = dlq_arn
    failures = topology.producer_failure_queue
    _, arns[failures] = _create_queue(sqs, name(failures), {"MessageRetentionPeriod": str(SQS_MAX_RETENTION)})
    inbox = topology.inbox_events
    _, arns[inbox.queue] = _create_queue(sqs, name(inbox.queue), inbox_queue_attributes(inbox, arns[failures]))
    return arns


def inbox_queue_attributes(inbox: InboxEvents, failures_arn: str) -> dict[str, str]:
    """SQS attributes of the queue S3 notifies (shared with the stack's tests): the producer's event source."""
    return {
        "VisibilityTimeout": str(inbox.visibility_timeout),
        "MessageRetentionPeriod": str(inbox.retention_seconds),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": failures_arn, "maxReceiveCount": inbox.max_receive_count}),
    }


def table_definition(spec: TableSpec, table_name: str) -> dict[str, Any]:
    """CreateTable arguments for a topology table: on demand, string keys, its secondary indexes."""
    key_names = [spec.partition_key] + ([spec.sort_key] if spec.sort_key else [])
    for index in spec.indexes:
        key_names += [index.partition_key, index.sort_key]
    definition: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in dict.fromkeys(key_names)],
        "KeySchema": [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
        + ([{"AttributeName": spec.sort_key, "KeyType": "RANGE"}] if spec.sort_key else []),
    }
    if spec.indexes:
        definition["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": index.projection},
            }
            for index in spec.indexes
        ]
    return definition


def provision_tables(dynamodb: Any, settings: Settings) -> None:
    """Create the ledger and results tables with TTL on."""
    for spec in (settings.topology.ledger_table, settings.topology.results_table):
        table_name = settings.physical_name(spec.name)
        try:
            dynamodb.create_table(**table_definition(spec, table_name))
        except dynamodb.exceptions.ResourceInUseException:
            continue
        dynamodb.update_time_to_live(TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute})


def provision_bucket(s3: Any, sqs: Any, settings: Settings) -> str:
    """Create the bucket and point its inbox notifications at the inbox events queue; return that queue's URL."""
    topology = settings.topology
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=settings.bucket)
    events_url = settings.queue_url(topology.inbox_events.queue)
    events_arn = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=settings.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "dropq-inbox",
                    "QueueArn": events_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": topology.inbox_prefix}]}},
                }
            ]
        },
    )
    return events_url


def provision_services(ecs: Any, settings: Settings) -> None:
    """An ECS cluster with a service per pool, at no workers: the local cloud keeps their desired counts there, as ECS does."""
    deployment = local_deployment(settings)
    ecs.create_cluster(clusterName=deployment.cluster)
    family = settings.physical_name("worker")
    ecs.register_task_definition(family=family, containerDefinitions=[{"name": "worker", "image": "dropq-worker", "memory": 512}])
    existing = ecs.describe_services(cluster=deployment.cluster, services=list(deployment.services.values()))["services"]
    for service in set(deployment.services.values()) - {s["serviceName"] for s in existing}:
        ecs.create_service(cluster=deployment.cluster, serviceName=service, taskDefinition=family, desiredCount=0)


def provision(settings: Settings, session: Any = None) -> str:
    """Create everything the topology names, and the local runtime's invocations queue; return the inbox events queue
    URL. Safe to run twice."""
    session = session or settings.session()
    sqs = session.client("sqs", endpoint_url=settings.endpoint_url)
    provision_queues(sqs, settings)
    _create_queue(sqs, settings.physical_name(LOCAL_INVOCATIONS_QUEUE), {"VisibilityTimeout": "30"})
    provision_tables(session.client("dynamodb", endpoint_url=settings.endpoint_url), settings)
    provision_services(session.client("ecs", endpoint_url=settings.endpoint_url), settings)
    return provision_bucket(session.client("s3", endpoint_url=settings.endpoint_url), sqs, settings)

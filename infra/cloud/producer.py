"""The producer Lambda: S3 notifications of the inbox prefix in, in batches from the inbox events queue; one Celery message
per file out."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from dropq.settings import DEFAULT_REGION, REGION, Settings
from infra.cloud.bundling import Target, producer_code
from infra.cloud.nag import acknowledge_check
from infra.cloud.queues import Queues
from infra.cloud.storage import Storage

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
# What pip installs wheels for when the asset carries packages (message signing's cryptography): the runtime's Python on
# Amazon Linux 2023 for arm64, whose glibc (2.34) runs manylinux2014 wheels.
BUNDLE_TARGET = Target(platform="manylinux2014_aarch64", python_version="3.14")
# Powertools for AWS Lambda (Python) v3, public layer 36 = aws-lambda-powertools 3.31.1, published for python3.14 on arm64:
# https://docs.powertools.aws.dev/lambda/python/latest/#lambda-layer
POWERTOOLS_LAYER = "arn:{partition}:lambda:{region}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:36"
HANDLER = "lambdas.producer.handler.handler"
MEMORY_MIB = 256
# An SQS event source mapping's maximum concurrency: 2..1000 (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html).
ESM_MAX_CONCURRENCY = 1000
# How long Lambda keeps retrying an asynchronous invocation (a schedule's firing) before it goes to the failure queue.
MAX_EVENT_AGE_HOURS = 6
LOG_RETENTION = logs.RetentionDays.ONE_MONTH


class Producer(Construct):
    """The producer function, its log group, the inbox notification and its event source mapping, and for schedules'
    asynchronous invocations, retries and an on-failure destination."""

    def __init__(self, scope: Construct, id: str, settings: Settings, storage: Storage, queues: Queues) -> None:
        super().__init__(scope, id)
        topology = settings.topology
        self.log_group = logs.LogGroup(self, "Logs", retention=LOG_RETENTION, removal_policy=cdk.RemovalPolicy.DESTROY)
        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", POWERTOOLS_LAYER.format(partition=cdk.Aws.PARTITION, region=cdk.Aws.REGION)
        )
        # Lambda sets AWS_REGION itself and refuses it as a variable.
        environment = {k: v for k, v in settings.environment().items() if k not in (REGION, DEFAULT_REGION)}
        # Its own role, writing only to its own log group (instead of the AWS-managed basic execution policy).
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.log_group.grant_write(role)
        self.function = lambda_.Function(
            self,
            "Function",
            role=role,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=producer_code(RUNTIME, signing=settings.signing_secret is not None, target=BUNDLE_TARGET),
            layers=[powertools],
            memory_size=MEMORY_MIB,
            timeout=cdk.Duration.seconds(topology.inbox_events.function_timeout_seconds),
            environment={**environment, "POWERTOOLS_SERVICE_NAME": "dropq-producer"},
            log_group=self.log_group,
            retry_attempts=topology.producer_retries,
            max_event_age=cdk.Duration.hours(MAX_EVENT_AGE_HOURS),
            on_failure=destinations.SqsDestination(queues.producer_failures),
            reserved_concurrent_executions=topology.capacity.producer_reserved_concurrency,
            description="dropq producer: S3 inbox notifications -> Celery messages on SQS",
        )
        self._acknowledge_checks(topology.capacity.producer_reserved_concurrency is None)
        for queue in queues.work.values():
            queue.grant_send_messages(role)
        # S3 notifies the inbox events queue; the producer takes its messages in batches and names the ones to retry.
        # On a bucket brought with `-c bucket=NAME` (imported, not the stack's), CDK writes this notification as an
        # unmanaged one, `Managed: false` on Custom::S3BucketNotifications (aws-cdk-lib 2.275.0,
        # aws-s3/lib/notifications-resource/notifications-resource.js: `managed = bucket instanceof Bucket`). Its handler
        # (custom-resource-handlers/dist/aws-s3/notifications-resource-handler/index.py, handle_unmanaged) reads the
        # bucket's configuration first, keeps every notification it did not write and adds its own, with an Id that
        # starts with the stack's id; on delete it puts back the others alone (aws/aws-cdk PR #29939, fixing issue #29004,
        # in which `cdk destroy` removed them all). The queue policy S3 sends with is the queue's, created either way.
        # S3 refuses a configuration in which two notifications of one event type have overlapping prefixes and
        # suffixes (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-filtering.html): the
        # deployment then fails and rolls back, the bucket's configuration unchanged.
        storage.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.SqsDestination(queues.inbox_events),
            s3.NotificationKeyFilter(prefix=topology.inbox_prefix),
        )
        # CDK's SqsDestination lets S3 send for this bucket by its ARN (aws:SourceArn) alone. A deleted bucket's name can
        # be taken by another account, so S3 is refused unless the bucket is this account's (aws:SourceAccount), as AWS
        # advises (https://docs.aws.amazon.com/AmazonS3/latest/userguide/grant-destinations-permissions-to-s3.html).
        queues.inbox_events.add_to_resource_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[queues.inbox_events.queue_arn],
                conditions={"StringNotEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
            )
        )
        inbox = topology.inbox_events
        reserved = topology.capacity.producer_reserved_concurrency
        self.function.add_event_source(
            sources.SqsEventSource(
                queues.inbox_events,
                batch_size=inbox.batch_size,
                max_batching_window=cdk.Duration.seconds(inbox.batching_window_seconds) if inbox.batching_window_seconds else None,
                report_batch_item_failures=True,
                # With reserved concurrency, the mapping invokes no more at once than it, rather than being throttled
                # (a throttled batch counts as a receive towards the dead-letter queue).
                max_concurrency=min(reserved, ESM_MAX_CONCURRENCY) if reserved else None,
            )
        )

    def _acknowledge_checks(self, shares_concurrency: bool) -> None:
        """checkov's findings on the producer that do not apply, each with why."""
        acknowledge_check(
            self.function,
            "CKV_AWS_116",
            "S3's notifications reach it through the inbox events queue, whose dead-letter queue is the producer-failures "
            "queue; its asynchronous invocations (schedules) fail over to that queue as their on-failure destination, which "
            "keeps the whole event (a function's dead-letter queue would keep less); an alarm watches it.",
        )
        acknowledge_check(
            self.function,
            "CKV_AWS_117",
            "It calls only AWS APIs (SQS, DynamoDB) and nothing in a VPC; inside one it would need NAT or interface endpoints.",
        )
        acknowledge_check(
            self.function,
            "CKV_AWS_173",
            "Its variables name resources and settings only (queues, tables, the bucket); no secret is among them.",
        )
        if shares_concurrency:
            acknowledge_check(
                self.function,
                "CKV_AWS_115",
                "The default profile shares the account's concurrency, so a small deployment reserves none it does not use; "
                "the production profile reserves 500 (dropq/topology.py, Capacity).",
            )
        acknowledge_check(
            self.log_group,
            "CKV_AWS_158",
            "CloudWatch Logs encrypts every log group at rest; the producer logs keys and task ids, never file contents.",
        )

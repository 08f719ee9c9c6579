"""The dropq stack: every resource derived from the topology, named `<stack>-<topology name>`."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct

from dropq.deployment import BUCKET_OUTPUT, CLUSTER_OUTPUT, DASHBOARD_OUTPUT, PREFIX_OUTPUT, output_id, service_output
from dropq.settings import PREFIX_PATTERN, Settings
from dropq.topology import TOPOLOGY, Topology
from infra.cloud.bundling import ROOT
from infra.cloud.monitoring import Monitoring
from infra.cloud.nag import acknowledge, acknowledge_check
from infra.cloud.producer import Producer
from infra.cloud.queues import Queues
from infra.cloud.schedules import Schedules
from infra.cloud.signing import MessageSigning
from infra.cloud.storage import ExistingBucket, Storage
from infra.cloud.webhooks import WebhookSecrets
from infra.cloud.workers import IMAGE_PLATFORMS, WorkerService

MAX_AZS = 2


class DropqStack(cdk.Stack):
    """Bucket (its own, or an existing one it attaches to), producer, queues, tables, Fargate worker pools, scaling,
    alarms and dashboard."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        topology: Topology = TOPOLOGY,
        profile: str = "default",
        existing_bucket: ExistingBucket | None = None,
        pipeline_modules: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.prefix = f"{self.stack_name}-"
        if not PREFIX_PATTERN.match(self.prefix):
            raise ValueError(
                f"stack name {self.stack_name!r} makes resource prefix {self.prefix!r}, which must match {PREFIX_PATTERN.pattern}"
            )
        self.storage = Storage(self, "Storage", topology, self.prefix, existing_bucket)
        self.queues = Queues(self, "Queues", topology, self.prefix)
        self.signing = MessageSigning(self, "Signing")
        self.settings = Settings.defaults(
            topology,
            profile=profile,
            endpoint_url=None,
            region=cdk.Aws.REGION,
            account_id=cdk.Aws.ACCOUNT_ID,
            bucket=self.storage.bucket.bucket_name,
            state_dir="/tmp/dropq",
            prefix=self.prefix,
            signing_secret=self.signing.name,
            pipeline_modules=pipeline_modules,
        )
        self.producer = Producer(self, "Producer", self.settings, self.storage, self.queues)
        self.signing.grant_read(self.producer.function)
        self.schedules = Schedules(self, "Schedules", topology, self.producer, self.queues)
        self._acknowledge_cdk_handlers()

        self.vpc = ec2.Vpc(
            self,
            "Network",
            max_azs=MAX_AZS,
            nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24)],
            # S3 and DynamoDB traffic stays on AWS's network, at no charge.
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB),
            },
            flow_logs={"Rejected": ec2.FlowLogOptions(traffic_type=ec2.FlowLogTrafficType.REJECT)},
        )
        self._acknowledge_flow_log()
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=self.vpc, container_insights_v2=ecs.ContainerInsights.ENABLED, enable_fargate_capacity_providers=True
        )
        self.webhooks = WebhookSecrets(self, "Webhooks", topology)
        # One worker image per architecture the pools run on, built for it.
        images = {
            architecture: ecs.ContainerImage.from_asset(str(ROOT), file="Dockerfile", platform=IMAGE_PLATFORMS[architecture])
            for architecture in dict.fromkeys(pool.architecture for pool in topology.pools)
        }
        self.pools = [
            WorkerService(
                self,
                f"Pool-{pool.name}",
                pool,
                self.settings,
                self.cluster,
                images[pool.architecture],
                self.storage,
                self.queues,
                self.webhooks,
            )
            for pool in topology.pools
        ]
        for pool in self.pools:
            self.signing.grant_read(pool.task_definition.task_role)
        self.monitoring = Monitoring(self, "Monitoring", topology, self.queues, self.producer, self.pools)
        self._outputs(topology)

    def _acknowledge_cdk_handlers(self) -> None:
        """CDK's own deploy-time function that writes the bucket's notification configuration."""
        for child in self.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                acknowledge(
                    child,
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                    "CDK's BucketNotificationsHandler runs only during deployments, to configure the bucket's notification; "
                    "CDK creates its role, with the basic execution policy for its logs.",
                )
                for check, why in (
                    ("CKV_AWS_115", "runs once per deployment, never concurrently with itself"),
                    ("CKV_AWS_116", "runs synchronously inside CloudFormation, which reports its failure"),
                    ("CKV_AWS_117", "calls only S3's API, and nothing in the VPC"),
                ):
                    acknowledge_check(child, check, f"CDK's BucketNotificationsHandler {why}; CDK defines it, not dropq.")

    def _acknowledge_flow_log(self) -> None:
        """The network's flow log of rejected connections, whose log group CDK makes."""
        for construct in self.vpc.node.find_all():
            if isinstance(construct, logs.CfnLogGroup):
                acknowledge_check(
                    construct,
                    "CKV_AWS_158",
                    "CloudWatch Logs encrypts every log group at rest; the flow log holds rejected connections' addresses only.",
                )

    def _outputs(self, topology: Topology) -> None:
        """What `dropq --stack NAME` and people need: bucket, inbox, queues, tables, dashboard."""
        bucket = self.storage.bucket.bucket_name
        outputs = {
            BUCKET_OUTPUT: bucket,
            "Inbox": f"s3://{bucket}/{topology.inbox_prefix}",
            PREFIX_OUTPUT: self.prefix,
            "LedgerTable": self.storage.ledger.table_name,
            "ResultsTable": self.storage.results.table_name,
            "ProducerFunction": self.producer.function.function_name,
            "ProducerFailuresQueueUrl": self.queues.producer_failures.queue_url,
            "AlarmTopic": self.monitoring.topic.topic_arn,
            DASHBOARD_OUTPUT: f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}#dashboards:name="
            + self.monitoring.dashboard.dashboard_name,
            CLUSTER_OUTPUT: self.cluster.cluster_name,
        }
        for name, queue in self.queues.work.items():
            outputs[f"Queue{output_id(name)}Url"] = queue.queue_url
            outputs[f"Queue{output_id(name)}DlqUrl"] = self.queues.dead_letter[name].queue_url
        for pool in self.pools:
            outputs[service_output(pool.pool.name)] = pool.service.service_name
        for name, secret in self.webhooks.generated.items():
            outputs[f"Webhook{output_id(name)}Secret"] = secret.secret_arn
        for key, value in outputs.items():
            cdk.CfnOutput(self, key, value=value)

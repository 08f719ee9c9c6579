"""A pool's Fargate service: the worker image, its task role, and scaling on the pool's queue backlog."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from dropq.settings import Settings
from dropq.topology import ARM64, X86_64, WorkerPool
from infra.cloud.nag import acknowledge, acknowledge_check, acknowledge_objects
from infra.cloud.queues import Queues
from infra.cloud.storage import Storage
from infra.cloud.webhooks import WebhookSecrets
from infra.scaling import (
    BACKLOG_PER_WORKER_EXPRESSION,
    METRIC_PERIOD,
    WAKE_EVALUATION_PERIODS,
    WAKE_EXPRESSION,
    backlog_expression,
    scaling_policy,
)
from infra.worker import worker_arguments, worker_environment

LOG_RETENTION = logs.RetentionDays.ONE_MONTH
# A pool's architecture (dropq/topology.py: WorkerPool.architecture) as ECS and the image asset name it.
CPU_ARCHITECTURES = {X86_64: ecs.CpuArchitecture.X86_64, ARM64: ecs.CpuArchitecture.ARM64}
IMAGE_PLATFORMS = {X86_64: ecr_assets.Platform.LINUX_AMD64, ARM64: ecr_assets.Platform.LINUX_ARM64}
CONTAINER_INSIGHTS = "ECS/ContainerInsights"
# What a worker does, and nothing more (tasks/storage.py, dropq/ledger.py, Celery's DynamoDB result backend).
INPUT_ACTIONS = ("s3:GetObject",)
OUTPUT_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject")
# A bucket's customer-managed KMS key, through S3 only:
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#require-sse-kms
BUCKET_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# Ledger: state transitions, periodic runs' claims and outcome counts (UpdateItem), reads by key (Query, GetItem), the
# report's failures (Query on its `failed` index, then BatchGetItem), its heartbeat (PutItem, DeleteItem).
LEDGER_ACTIONS = (
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
)
# Results: Celery checks the table and its TTL at start, then reads and writes items (and counters, for chords).
# Scale-in protection while busy (tasks/protection.py): the ECS agent calls these with the task role.
PROTECTION_ACTIONS = ("ecs:GetTaskProtection", "ecs:UpdateTaskProtection")
RESULTS_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)


class WorkerService(Construct):
    """One pool: `celery -A tasks worker` on Fargate, scaled between the pool's min and max on its backlog."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        pool: WorkerPool,
        settings: Settings,
        cluster: ecs.Cluster,
        image: ecs.ContainerImage,
        storage: Storage,
        queues: Queues,
        webhooks: WebhookSecrets,
    ) -> None:
        super().__init__(scope, id)
        self.pool = pool
        self.log_group = logs.LogGroup(self, "Logs", retention=LOG_RETENTION, removal_policy=cdk.RemovalPolicy.DESTROY)
        acknowledge_check(
            self.log_group,
            "CKV_AWS_158",
            "CloudWatch Logs encrypts every log group at rest; workers log keys, task ids and reasons, never file contents.",
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=pool.cpu,
            memory_limit_mib=pool.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=CPU_ARCHITECTURES[pool.architecture], operating_system_family=ecs.OperatingSystemFamily.LINUX
            ),
        )
        self.container = self.task_definition.add_container(
            "worker",
            image=image,
            command=["celery", *worker_arguments(pool, f"{pool.name}@%h")],
            environment={**settings.environment(), **worker_environment(pool), **webhooks.environment},
            secrets=webhooks.secrets,
            # One log event per line. The EMF lines (dropq/observe.py) become the `dropq` metrics: CloudWatch Logs
            # detects EMF without the `x-amzn-logs-format: json/emf` header, which awslogs on ECS cannot send
            # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_PutLogEvents.html);
            # a region without that detection needs a FireLens sidecar that sends the header (not built here).
            logging=ecs.LogDrivers.aws_logs(stream_prefix=pool.name, log_group=self.log_group),
            stop_timeout=cdk.Duration.seconds(pool.stop_timeout),
            readonly_root_filesystem=False,
        )
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "The variables are resource names and limits, no secrets: the task role grants access.",
        )
        self._grant(settings, storage, queues)
        self._grant_protection(cluster)

        security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=cluster.vpc, allow_all_outbound=True, description=f"dropq {pool.name} workers: no inbound"
        )
        # A Spot pool: its first task on demand (progress when Spot has no capacity), every further one on Spot.
        spot = (
            [
                ecs.CapacityProviderStrategy(capacity_provider="FARGATE", base=1, weight=0),
                ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=1),
            ]
            if pool.spot
            else None
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            # No desired count: with cdk.json's removeDefaultDesiredCount a deployment never resets what autoscaling set.
            # Workers only call out (SQS, S3, DynamoDB): public subnets without NAT gateways cost nothing while idle.
            assign_public_ip=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[security_group],
            capacity_provider_strategies=spot,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=100,
        )
        self._autoscale(settings, cluster, queues)

    def _grant_protection(self, cluster: ecs.Cluster) -> None:
        """Let a busy worker protect its own task from scale-in (its task ARN is only known at run time)."""
        tasks = cdk.Stack.of(self).format_arn(service="ecs", resource="task", resource_name=f"{cluster.cluster_name}/*")
        role = self.task_definition.task_role
        role.add_to_principal_policy(iam.PolicyStatement(actions=list(PROTECTION_ACTIONS), resources=[tasks]))
        stack = cdk.Stack.of(self)
        cluster_id = stack.resolve(stack.get_logical_id(cluster.node.default_child))
        # cdk-nag names the resource as synthesized: pseudo parameters where the environment is not known.
        partition, region, account = (
            f"<AWS::{name}>" if cdk.Token.is_unresolved(value) else value
            for name, value in (("Partition", stack.partition), ("Region", stack.region), ("AccountId", stack.account))
        )
        acknowledge(
            role.node.try_find_child("DefaultPolicy"),
            f"AwsSolutions-IAM5[Resource::arn:{partition}:ecs:{region}:{account}:task/<{cluster_id}>/*]",
            "A worker protects its own task, whose ARN ECS assigns at launch; the grant covers this cluster's tasks only.",
        )

    def _grant(self, settings: Settings, storage: Storage, queues: Queues) -> None:
        """Only what a worker does: consume its queues, send tasks, read inputs, write outputs and reports, keep the ledger."""
        role = self.task_definition.task_role
        topology = settings.topology
        for name in self.pool.queues:
            queues.work[name].grant_consume_messages(role)
        # Retries, delays that hop, parts of a file publish tasks, on any queue.
        for queue in queues.work.values():
            queue.grant_send_messages(role)
        inputs = storage.bucket.arn_for_objects(f"{topology.inbox_prefix}*")
        outputs = storage.bucket.arn_for_objects(f"{topology.output_prefix}*")
        reports = storage.bucket.arn_for_objects(f"{topology.reports_prefix}*")
        role.add_to_principal_policy(iam.PolicyStatement(actions=list(INPUT_ACTIONS), resources=[inputs]))
        role.add_to_principal_policy(iam.PolicyStatement(actions=list(OUTPUT_ACTIONS), resources=[outputs]))
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[reports]))
        if storage.bucket_key is not None:
            # An existing bucket's objects under its customer-managed key: S3 decrypts what workers read and asks for a
            # data key for what they write (and decrypts it again to finish a multipart upload), on their behalf only.
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=list(BUCKET_KEY_ACTIONS),
                    resources=[storage.bucket_key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{cdk.Aws.REGION}.amazonaws.com"}},
                )
            )
        ledger = [storage.ledger.table_arn, f"{storage.ledger.table_arn}/index/*"]
        role.add_to_principal_policy(iam.PolicyStatement(actions=list(LEDGER_ACTIONS), resources=ledger))
        role.add_to_principal_policy(iam.PolicyStatement(actions=list(RESULTS_ACTIONS), resources=[storage.results.table_arn]))
        policy = self.task_definition.task_role.node.try_find_child("DefaultPolicy")
        for prefix in (topology.inbox_prefix, topology.output_prefix, topology.reports_prefix):
            acknowledge_objects(policy, storage.bucket, prefix)
        stack = cdk.Stack.of(self)
        ledger_id = stack.resolve(stack.get_logical_id(storage.ledger.node.default_child))
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::<{ledger_id}.Arn>/index/*]",
            "The ledger's own secondary indexes: the daily report queries its `failed` index.",
        )
        execution_policy = self.task_definition.obtain_execution_role().node.try_find_child("DefaultPolicy")
        acknowledge(
            execution_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource to scope to; ECS's execution role needs it to pull the worker image.",
        )

    def _autoscale(self, settings: Settings, cluster: ecs.Cluster, queues: Queues) -> None:
        """Wake from zero on a backlog, then track backlog per running task (waiting + in flight), back to the minimum when idle."""
        policy = scaling_policy(self.pool)
        period = cdk.Duration.seconds(METRIC_PERIOD)
        queue_metrics: dict[str, cloudwatch.IMetric] = {}
        for i, name in enumerate(self.pool.queues):
            queue = queues.work[name]
            queue_metrics[f"visible{i}"] = queue.metric_approximate_number_of_messages_visible(period=period, statistic="Maximum")
            queue_metrics[f"inflight{i}"] = queue.metric_approximate_number_of_messages_not_visible(period=period, statistic="Maximum")
        dimensions = {"ClusterName": cluster.cluster_name, "ServiceName": self.service.service_name}
        tasks = {
            name: cloudwatch.Metric(
                namespace=CONTAINER_INSIGHTS, metric_name=metric, dimensions_map=dimensions, period=period, statistic="Average"
            )
            for name, metric in (("running", "RunningTaskCount"), ("desired", "DesiredTaskCount"))
        }
        self.backlog = cloudwatch.MathExpression(
            expression=backlog_expression(list(queue_metrics)), using_metrics=queue_metrics, period=period, label="backlog"
        )
        self.backlog_per_task = cloudwatch.MathExpression(
            expression=BACKLOG_PER_WORKER_EXPRESSION,
            using_metrics={"backlog": self.backlog, "running": tasks["running"]},
            period=period,
            label="backlog per task",
        )
        self.running_tasks = tasks["running"]

        self.scalable = appscaling.ScalableTarget(
            self,
            "DesiredCount",
            service_namespace=appscaling.ServiceNamespace.ECS,
            resource_id=f"service/{cluster.cluster_name}/{self.service.service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=policy.min_workers,
            max_capacity=policy.max_workers,
        )
        self.tracking = appscaling.CfnScalingPolicy(
            self,
            "TrackBacklogPerTask",
            policy_name=f"{cdk.Names.unique_id(self)}-backlog-per-task",
            policy_type="TargetTrackingScaling",
            scaling_target_id=self.scalable.scalable_target_id,
            target_tracking_scaling_policy_configuration=appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(policy.backlog_per_worker),
                scale_out_cooldown=int(policy.scale_out_cooldown),
                scale_in_cooldown=int(policy.scale_in_cooldown),
                customized_metric_specification=appscaling.CfnScalingPolicy.CustomizedMetricSpecificationProperty(
                    metrics=self._tracking_queries(queue_metrics, tasks["running"])
                ),
            ),
        )
        wake = appscaling.StepScalingAction(
            self,
            "Wake",
            scaling_target=self.scalable,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=cdk.Duration.seconds(policy.wake_cooldown),
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
        )
        wake.add_adjustment(adjustment=1, lower_bound=0)
        self.wake_alarm = cloudwatch.Alarm(
            self,
            "WakeAlarm",
            alarm_description=f"dropq pool {self.pool.name}: messages wait and no task is wanted; start one",
            metric=cloudwatch.MathExpression(
                expression=WAKE_EXPRESSION, using_metrics={"backlog": self.backlog, "desired": tasks["desired"]}, period=period
            ),
            threshold=1,
            evaluation_periods=WAKE_EVALUATION_PERIODS,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.wake_alarm.add_alarm_action(cw_actions.ApplicationScalingAction(wake))

    def _tracking_queries(
        self, queue_metrics: dict[str, cloudwatch.IMetric], running: cloudwatch.Metric
    ) -> list[appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty]:
        """The metric math of `backlog per task` as target tracking's metric data queries."""
        Query = appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty

        def stat(metric_id: str, metric: cloudwatch.IMetric) -> appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty:
            config = metric.to_metric_config().metric_stat
            assert config is not None
            return Query(
                id=metric_id,
                return_data=False,
                metric_stat=appscaling.CfnScalingPolicy.TargetTrackingMetricStatProperty(
                    metric=appscaling.CfnScalingPolicy.TargetTrackingMetricProperty(
                        namespace=config.namespace,
                        metric_name=config.metric_name,
                        dimensions=[
                            appscaling.CfnScalingPolicy.TargetTrackingMetricDimensionProperty(name=d.name, value=d.value)
                            for d in config.dimensions or []
                        ],
                    ),
                    stat=config.statistic,
                ),
            )

        return [
            *(stat(metric_id, metric) for metric_id, metric in queue_metrics.items()),
            stat("running", running),
            Query(id="backlog", expression=backlog_expression(list(queue_metrics)), return_data=False),
            Query(id="backlog_per_task", expression=BACKLOG_PER_WORKER_EXPRESSION, return_data=True, label="backlog per task"),
        ]

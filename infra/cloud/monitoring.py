"""Alarms for what needs a person (dead letters, stale messages, producer errors) and one dashboard.

The dashboard shows each pool's queues and tasks, then each pipeline's files: the metrics workers publish in
CloudWatch's embedded metric format (dropq/observe.py), in the `dropq` namespace, by deployment and pipeline.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from dropq.observe import BYTES, DEPLOYMENT, DURATION, FAILED, NAMESPACE, PIPELINE, SUCCEEDED
from dropq.topology import Topology
from infra.cloud.nag import acknowledge, acknowledge_check
from infra.cloud.producer import Producer
from infra.cloud.queues import Queues
from infra.cloud.workers import WorkerService

# A message older than this has waited through many visibility timeouts: workers are missing or failing.
OLDEST_MESSAGE_ALARM_SECONDS = 30 * 60
ALARM_PERIOD = cdk.Duration.minutes(5)


class Monitoring(Construct):
    """CloudWatch alarms (to an SNS topic you can subscribe to) and the dropq dashboard."""

    def __init__(
        self, scope: Construct, id: str, topology: Topology, queues: Queues, producer: Producer, pools: list[WorkerService]
    ) -> None:
        super().__init__(scope, id)
        self.topic = sns.Topic(
            self,
            "Alarms",
            display_name="dropq alarms",
            enforce_ssl=True,
        )
        acknowledge(
            self.topic,
            "AwsSolutions-SNS2",
            "CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key, and alarm messages carry "
            "only alarm names and thresholds, no file contents.",
        )
        acknowledge_check(
            self.topic,
            "CKV_AWS_26",
            "CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key; the messages hold alarm "
            "names and thresholds only.",
        )
        self.alarms: list[cloudwatch.Alarm] = []
        for queue in queues.all_dead_letters:
            self._alarm(
                f"DeadLetters{len(self.alarms)}",
                queue.metric_approximate_number_of_messages_visible(period=ALARM_PERIOD, statistic="Maximum"),
                1,
                f"Messages are waiting in {queue.queue_name}: see `dropq status` for their reasons",
            )
        for name, queue in queues.work.items():
            self._alarm(
                f"OldestMessage-{name}",
                queue.metric_approximate_age_of_oldest_message(period=ALARM_PERIOD, statistic="Maximum"),
                OLDEST_MESSAGE_ALARM_SECONDS,
                f"A message in {queue.queue_name} is older than {OLDEST_MESSAGE_ALARM_SECONDS // 60} minutes: are workers running?",
            )
        self._alarm(
            "OldestInboxEvent",
            queues.inbox_events.metric_approximate_age_of_oldest_message(period=ALARM_PERIOD, statistic="Maximum"),
            OLDEST_MESSAGE_ALARM_SECONDS,
            f"An S3 notification in {queues.inbox_events.queue_name} is older than {OLDEST_MESSAGE_ALARM_SECONDS // 60} minutes: "
            "is the producer failing or throttled?",
        )
        self._alarm(
            "ProducerErrors",
            producer.function.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
            1,
            "The producer Lambda failed (a batch of S3 notifications comes back from its queue, a schedule's firing is retried; "
            "what keeps failing lands in the producer-failures queue)",
        )
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{cdk.Stack.of(self).stack_name}-dropq")
        for pool in pools:
            self._pool_widgets(pool, queues)
        for pipeline in dict.fromkeys(route.pipeline for route in topology.routes):
            self._pipeline_widgets(pipeline)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Dead letters",
                left=[q.metric_approximate_number_of_messages_visible(statistic="Maximum") for q in queues.all_dead_letters],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Producer",
                left=[producer.function.metric_invocations(), producer.function.metric_errors()],
                right=[producer.function.metric_duration()],
                width=12,
            ),
        )
        self.dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24))

    def _pool_widgets(self, pool: WorkerService, queues: Queues) -> None:
        """One row: the pool's queues (waiting, in flight), its backlog, its backlog per task, its running tasks."""
        name = pool.pool.name
        depth: list[cloudwatch.IMetric] = []
        for queue_name in pool.pool.queues:
            queue = queues.work[queue_name]
            depth.append(queue.metric_approximate_number_of_messages_visible(statistic="Maximum", label=f"{queue_name} waiting"))
            depth.append(queue.metric_approximate_number_of_messages_not_visible(statistic="Maximum", label=f"{queue_name} in flight"))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title=f"{name}: queue depth", left=depth, width=6),
            cloudwatch.GraphWidget(title=f"{name}: backlog (waiting + in flight)", left=[pool.backlog], width=6),
            cloudwatch.GraphWidget(
                title=f"{name}: backlog per task (target {pool.pool.backlog_per_worker})", left=[pool.backlog_per_task], width=6
            ),
            cloudwatch.GraphWidget(title=f"{name}: running tasks", left=[pool.running_tasks], width=6),
        )

    def _pipeline_widgets(self, pipeline: str) -> None:
        """One row: how long the pipeline's files take, how many succeed and fail, how many bytes they bring."""
        # The workers' deployment dimension: their resource prefix, `<stack name>-`, without its dash (dropq/observe.py).
        dimensions = {DEPLOYMENT: cdk.Stack.of(self).stack_name, PIPELINE: pipeline}

        def metric(name: str, statistic: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(namespace=NAMESPACE, metric_name=name, dimensions_map=dimensions, statistic=statistic, label=label)

        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{pipeline}: duration of a succeeded file (ms)",
                left=[metric(DURATION, "p50", "p50"), metric(DURATION, "p95", "p95")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"{pipeline}: files", left=[metric(SUCCEEDED, "Sum", "succeeded"), metric(FAILED, "Sum", "failed")], width=8
            ),
            cloudwatch.GraphWidget(title=f"{pipeline}: input bytes", left=[metric(BYTES, "Sum", "bytes")], width=8),
        )

    def _alarm(self, id: str, metric: cloudwatch.IMetric, threshold: float, description: str) -> None:
        alarm = cloudwatch.Alarm(
            self,
            id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        self.alarms.append(alarm)

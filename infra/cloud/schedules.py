"""The topology's schedules as EventBridge Scheduler schedules that invoke the producer (no beat process to keep alive)."""

from __future__ import annotations

import json

from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from dropq.schedules import SCHEDULE_FIELD, TIME_FIELD
from dropq.topology import Topology
from infra.cloud.producer import Producer
from infra.cloud.queues import Queues

# EventBridge Scheduler fills this in with the time the invocation was scheduled for: the period's identity.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
# Invocations EventBridge retries before it gives up and sends the payload to the dead-letter queue.
MAX_RETRIES = 10
MAX_EVENT_AGE_SECONDS = 6 * 60 * 60


def schedule_input(name: str) -> str:
    """The JSON the producer is invoked with for one schedule."""
    return json.dumps({SCHEDULE_FIELD: name, TIME_FIELD: SCHEDULED_TIME})


class Schedules(Construct):
    """One schedule per topology schedule, at its exact times in UTC; invocations that keep failing land in the producer's failure queue."""

    def __init__(self, scope: Construct, id: str, topology: Topology, producer: Producer, queues: Queues) -> None:
        super().__init__(scope, id)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"))
        # The function itself, not its versions (`grant_invoke` adds `<arn>:*`).
        role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[producer.function.function_arn]))
        queues.producer_failures.grant_send_messages(role)
        self.schedules = {
            schedule.name: scheduler.CfnSchedule(
                self,
                schedule.name,
                schedule_expression=schedule.expression,
                schedule_expression_timezone="UTC",
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                description=f"dropq: run {schedule.task} ({schedule.name})",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=producer.function.function_arn,
                    role_arn=role.role_arn,
                    input=schedule_input(schedule.name),
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                        maximum_retry_attempts=MAX_RETRIES, maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS
                    ),
                    dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=queues.producer_failures.queue_arn),
                ),
            )
            for schedule in topology.schedules
        }

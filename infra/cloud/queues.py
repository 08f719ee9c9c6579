"""The topology's SQS queues, each with its dead-letter queue, the inbox events queue S3 notifies, and the producer's
failure queue."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dropq.topology import SQS_MAX_RETENTION, SQS_MAX_WAIT_SECONDS, QueueSpec, Topology
from infra.cloud.nag import acknowledge, acknowledge_check


class Queues(Construct):
    """Work queues and DLQs (SSE, TLS only), named `<prefix><topology name>`."""

    def __init__(self, scope: Construct, id: str, topology: Topology, prefix: str) -> None:
        super().__init__(scope, id)
        self.work: dict[str, sqs.Queue] = {}
        self.dead_letter: dict[str, sqs.Queue] = {}
        for spec in topology.queues:
            self.dead_letter[spec.name] = self._dead_letter_queue(spec, prefix)
            self.work[spec.name] = sqs.Queue(
                self,
                f"Queue-{spec.name}",
                queue_name=f"{prefix}{spec.name}",
                visibility_timeout=cdk.Duration.seconds(spec.visibility_timeout),
                retention_period=cdk.Duration.seconds(spec.retention_seconds),
                receive_message_wait_time=cdk.Duration.seconds(SQS_MAX_WAIT_SECONDS),
                dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter[spec.name], max_receive_count=spec.max_receive_count),
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
            )
        # Where Lambda puts S3 events the producer failed on after its retries (its on-failure destination).
        self.producer_failures = sqs.Queue(
            self,
            "ProducerFailures",
            queue_name=f"{prefix}{topology.producer_failure_queue}",
            retention_period=cdk.Duration.seconds(SQS_MAX_RETENTION),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        acknowledge(
            self.producer_failures,
            "AwsSolutions-SQS3",
            "This queue is itself the last stop (the inbox events' dead letters, Lambda's on-failure destination for schedules); "
            "an alarm watches it, `dropq status` counts it.",
        )
        # S3's notifications of the inbox, which the producer consumes in batches (its event source mapping).
        inbox = topology.inbox_events
        self.inbox_events = sqs.Queue(
            self,
            "InboxEvents",
            queue_name=f"{prefix}{inbox.queue}",
            visibility_timeout=cdk.Duration.seconds(inbox.visibility_timeout),
            retention_period=cdk.Duration.seconds(inbox.retention_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.producer_failures, max_receive_count=inbox.max_receive_count),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self._acknowledge_encryption()

    def _dead_letter_queue(self, spec: QueueSpec, prefix: str) -> sqs.Queue:
        return sqs.Queue(
            self,
            f"DeadLetters-{spec.name}",
            queue_name=f"{prefix}{spec.dlq_name}",
            retention_period=cdk.Duration.seconds(spec.dlq_retention_seconds),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )

    def _acknowledge_encryption(self) -> None:
        for queue in [*self.work.values(), *self.dead_letter.values(), self.producer_failures, self.inbox_events]:
            acknowledge_check(
                queue,
                "CKV_AWS_27",
                "Encrypted at rest with SQS-managed keys (SSE-SQS, SqsManagedSseEnabled); a KMS key would add a KMS request "
                "per batch of messages sent or received, for keys nobody else may use.",
            )

    @property
    def all_dead_letters(self) -> list[sqs.Queue]:
        """Every queue whose messages need a person: the DLQs and the producer's failures."""
        return [*self.dead_letter.values(), self.producer_failures]

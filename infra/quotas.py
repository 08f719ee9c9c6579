"""AWS quotas, and the behaviour of AWS that dropq cannot run locally, as the capacity plan (ops/capacity/) models it.

Every figure is a named constant beside the AWS page that states it, and `FIGURES` lists them with their status:

- published: the page states it in so many words;
- archived: an older stored copy of the AWS page (or a mirror of it) states it; today's wording may differ;
- observed: no AWS page states it; it is what deployed resources show (the note says where it was seen);
- assumed: nobody publishes it; a modelling choice, to be replaced by a measurement;
- account: a quota of the account, which differs between accounts: a parameter of the plan, with the default named.

Figures that dropq/topology.py already checks are imported from there, not repeated. Prices are in infra/prices.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from dropq.topology import (
    DYNAMODB_PARTITION_READS,
    DYNAMODB_PARTITION_WRITES,
    DYNAMODB_TABLE_MAX_UNITS,
    FARGATE_MAX_STOP_TIMEOUT,
    SQS_MAX_RETENTION,
)
from infra.scaling import METRIC_PERIOD

PUBLISHED = "published"
ARCHIVED = "archived"
OBSERVED = "observed"
ASSUMED = "assumed"
ACCOUNT = "account"

# --- SQS ---------------------------------------------------------------------------------------------------------
SQS_QUEUE_QUOTAS = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-queues.html"
# "a maximum of approximately 120,000 in flight messages" per standard queue; beyond it a long poll returns nothing.
SQS_MAX_IN_FLIGHT = 120_000
SQS_MESSAGE_QUOTAS = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html"
# SQS_MAX_RETENTION (14 days) is topology.py's; a queue keeps a message 4 days unless told otherwise.
SQS_DEFAULT_RETENTION = 4 * 24 * 60 * 60
SQS_METRICS = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-monitoring-using-cloudwatch.html"
# Queue metrics reach CloudWatch every minute while the queue is "active" (a message, or any call, in the last 6 hours)...
SQS_METRIC_INTERVAL = 60
SQS_ACTIVE_SECONDS = 6 * 60 * 60
# ... and up to 15 minutes late when an inactive queue becomes active: the first file after six idle hours may wait
# that long for its pool to wake. The plan assumes an active queue.
SQS_INACTIVE_METRIC_DELAY = 15 * 60

# --- Lambda (the producer) -----------------------------------------------------------------------------------------
LAMBDA_QUOTAS = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"
# Concurrent executions per account and Region, shared by every function without reserved concurrency. New accounts
# may start lower ("New AWS accounts have reduced concurrency and memory quotas"): a parameter of the plan.
LAMBDA_ACCOUNT_CONCURRENCY = 1_000
LAMBDA_SCALING = "https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html"
# "for each function, your concurrency scaling rate is 1,000 execution environment instances every 10 seconds".
LAMBDA_SCALING_STEP = 1_000
LAMBDA_SCALING_PERIOD = 10
LAMBDA_ASYNC = "https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-configuring.html"
# An asynchronous event (an S3 notification) waits in Lambda's queue at most 6 hours, then goes to the on-failure
# destination (the stack sets exactly that: infra/cloud/producer.py, MAX_EVENT_AGE_HOURS).
LAMBDA_MAX_EVENT_AGE = 6 * 60 * 60

# --- ECS and Fargate (the workers) ---------------------------------------------------------------------------------
FARGATE_THROTTLING = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html"
# The account's token bucket for Fargate task launches: 100 at once, refilled at 20 a second (On-Demand and Spot each).
FARGATE_LAUNCH_BURST = 100
FARGATE_LAUNCH_RATE = 20
ECS_SERVICE_QUOTAS = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-quotas.html"
# "The maximum number of tasks that can be provisioned per service per minute on Fargate by the Amazon ECS service scheduler."
ECS_SERVICE_LAUNCHES_PER_MINUTE = 500
# The desired count of one service, at most (1,000 with service discovery, which the stack does not use).
ECS_TASKS_PER_SERVICE = 5_000
FARGATE_PULL = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-pull-behavior.html"
# From launch to a worker polling: AWS publishes no figure, only that the image pull dominates it. 60 s is an
# assumption for a worker image of a few hundred MB (30-60 s is what is commonly reported); measure it.
FARGATE_TASK_START_SECONDS = 60
FARGATE_QUOTAS = "https://docs.aws.amazon.com/general/latest/gr/ecs-service.html"
# "Fargate On-Demand vCPU resource count" (Service Quotas L-3032A538; Spot: L-36FBB829) differs between accounts and is
# lower for new ones (6 has been reported): read yours and pass it to the plan. 4,000 is the plan's default.
FARGATE_VCPU_QUOTA = 4_000
FARGATE_SPOT = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-capacity-providers.html"
# A Spot task gets two minutes' warning (SIGTERM), within which FARGATE_MAX_STOP_TIMEOUT (topology.py) must fit.
FARGATE_SPOT_WARNING = 120

# --- Application Auto Scaling and CloudWatch ------------------------------------------------------------------------
TARGET_TRACKING = "https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html"
# The alarms target tracking creates for itself: AWS does not document them. Deployed ones fire after 3 datapoints
# of a minute above the target, and 15 below 90% of it (observed on deployed alarms, e.g. the aws-samples Fargate
# workshop's "> 30 for 3 datapoints" / "< 27 for 15 datapoints"); the stack's wake alarm is its own (infra/scaling.py).
TARGET_TRACKING_SCALE_OUT_DATAPOINTS = 3
TARGET_TRACKING_SCALE_IN_DATAPOINTS = 15
TARGET_TRACKING_SCALE_IN_FRACTION = 0.9

# --- DynamoDB (the ledger) ------------------------------------------------------------------------------------------
DYNAMODB_ON_DEMAND = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/pre-warming-on-demand-capacity-mode.html"
# "New on-demand tables will be able to sustain up to 4,000 writes per second and 12,000 reads per second", then up to
# "twice its previous peak", with throttling "if the throughput exceeds twice the previous peak within the same 30
# minutes": the plan doubles what a table served once 30 minutes have passed. AWS states no separate start for a new
# index ("available by default for all tables and global secondary indexes"): the plan gives it the table's.
DYNAMODB_NEW_TABLE_WRITES = 4_000
DYNAMODB_NEW_TABLE_READS = 12_000
DYNAMODB_DOUBLING_SECONDS = 30 * 60
DYNAMODB_QUOTAS = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html"
DYNAMODB_PARTITIONS = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
# DYNAMODB_TABLE_MAX_UNITS (40,000 per table, and per index of it) and DYNAMODB_PARTITION_WRITES/READS (1,000/3,000
# per partition key value) are topology.py's.

# --- S3 -------------------------------------------------------------------------------------------------------------
S3_PERFORMANCE = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html"
# "at least 3,500 PUT/COPY/POST/DELETE or 5,500 GET/HEAD requests per second per partitioned prefix". S3 partitions a
# busy prefix further on its own, gradually, answering 503 Slow Down meanwhile, at a pace AWS does not publish: the plan
# holds a bucket at the partitioned prefixes it is told.
S3_PREFIX_PUTS = 3_500
S3_PREFIX_GETS = 5_500


@dataclass(frozen=True)
class Figure:
    """One modelled figure: its constant's name, value and unit, its status (published, archived, ...) and source."""

    name: str
    value: float
    unit: str
    status: str
    source: str


FIGURES = (
    Figure("SQS_MAX_IN_FLIGHT", SQS_MAX_IN_FLIGHT, "messages per standard queue", PUBLISHED, SQS_QUEUE_QUOTAS),
    Figure("SQS_MAX_RETENTION", SQS_MAX_RETENTION, "s", PUBLISHED, SQS_MESSAGE_QUOTAS),
    Figure("SQS_DEFAULT_RETENTION", SQS_DEFAULT_RETENTION, "s", PUBLISHED, SQS_MESSAGE_QUOTAS),
    Figure("SQS_METRIC_INTERVAL", SQS_METRIC_INTERVAL, "s", PUBLISHED, SQS_METRICS),
    Figure("SQS_INACTIVE_METRIC_DELAY", SQS_INACTIVE_METRIC_DELAY, "s, at most", PUBLISHED, SQS_METRICS),
    Figure("METRIC_PERIOD", METRIC_PERIOD, "s (the stack's alarms and policies)", PUBLISHED, SQS_METRICS),
    Figure("LAMBDA_ACCOUNT_CONCURRENCY", LAMBDA_ACCOUNT_CONCURRENCY, "executions", ACCOUNT, LAMBDA_QUOTAS),
    Figure("LAMBDA_SCALING_STEP", LAMBDA_SCALING_STEP, f"executions per {LAMBDA_SCALING_PERIOD} s per function", PUBLISHED, LAMBDA_SCALING),
    Figure("LAMBDA_MAX_EVENT_AGE", LAMBDA_MAX_EVENT_AGE, "s", PUBLISHED, LAMBDA_ASYNC),
    Figure("FARGATE_LAUNCH_BURST", FARGATE_LAUNCH_BURST, "tasks at once per account", PUBLISHED, FARGATE_THROTTLING),
    Figure("FARGATE_LAUNCH_RATE", FARGATE_LAUNCH_RATE, "tasks/s per account", PUBLISHED, FARGATE_THROTTLING),
    Figure("ECS_SERVICE_LAUNCHES_PER_MINUTE", ECS_SERVICE_LAUNCHES_PER_MINUTE, "tasks/min per service", PUBLISHED, ECS_SERVICE_QUOTAS),
    Figure("ECS_TASKS_PER_SERVICE", ECS_TASKS_PER_SERVICE, "tasks", ARCHIVED, ECS_SERVICE_QUOTAS),
    Figure("FARGATE_TASK_START_SECONDS", FARGATE_TASK_START_SECONDS, "s", ASSUMED, FARGATE_PULL),
    Figure("FARGATE_VCPU_QUOTA", FARGATE_VCPU_QUOTA, "vCPUs", ACCOUNT, FARGATE_QUOTAS),
    Figure("FARGATE_SPOT_WARNING", FARGATE_SPOT_WARNING, "s", PUBLISHED, FARGATE_SPOT),
    Figure("FARGATE_MAX_STOP_TIMEOUT", FARGATE_MAX_STOP_TIMEOUT, "s", PUBLISHED, FARGATE_SPOT),
    Figure("TARGET_TRACKING_SCALE_OUT_DATAPOINTS", TARGET_TRACKING_SCALE_OUT_DATAPOINTS, "datapoints", OBSERVED, TARGET_TRACKING),
    Figure("TARGET_TRACKING_SCALE_IN_DATAPOINTS", TARGET_TRACKING_SCALE_IN_DATAPOINTS, "datapoints", OBSERVED, TARGET_TRACKING),
    Figure("TARGET_TRACKING_SCALE_IN_FRACTION", TARGET_TRACKING_SCALE_IN_FRACTION, "of the target", OBSERVED, TARGET_TRACKING),
    Figure("DYNAMODB_NEW_TABLE_WRITES", DYNAMODB_NEW_TABLE_WRITES, "write units/s", PUBLISHED, DYNAMODB_ON_DEMAND),
    Figure("DYNAMODB_NEW_TABLE_READS", DYNAMODB_NEW_TABLE_READS, "read units/s", PUBLISHED, DYNAMODB_ON_DEMAND),
    Figure("DYNAMODB_DOUBLING_SECONDS", DYNAMODB_DOUBLING_SECONDS, "s to double the previous peak", PUBLISHED, DYNAMODB_ON_DEMAND),
    Figure("DYNAMODB_TABLE_MAX_UNITS", DYNAMODB_TABLE_MAX_UNITS, "units/s per table or index", PUBLISHED, DYNAMODB_QUOTAS),
    Figure("DYNAMODB_PARTITION_WRITES", DYNAMODB_PARTITION_WRITES, "write units/s per key value", PUBLISHED, DYNAMODB_PARTITIONS),
    Figure("DYNAMODB_PARTITION_READS", DYNAMODB_PARTITION_READS, "read units/s per key value", PUBLISHED, DYNAMODB_PARTITIONS),
    Figure("S3_PREFIX_PUTS", S3_PREFIX_PUTS, "PUT/s per partitioned prefix", ARCHIVED, S3_PERFORMANCE),
    Figure("S3_PREFIX_GETS", S3_PREFIX_GETS, "GET/s per partitioned prefix", ARCHIVED, S3_PERFORMANCE),
)

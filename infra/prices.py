"""AWS list prices in us-east-1, as recorded on `RECORDED`, one small value per service, for the capacity plan and cost models.

AWS draws most price tables in the browser, so few figures could be read from a page's text: each price says whether it
was verified on an AWS page (VERIFIED, with the page's own words in the note) or taken from third-party copies of the
table (UNVERIFIED). Free tiers are left out: a plan of a burst is what it costs beyond them. Before a figure goes into a
model of record, check it against the Price List API (https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/<Service>/current/us-east-1/index.json).
"""

from __future__ import annotations

from dataclasses import dataclass

REGION = "us-east-1"
RECORDED = "2026-12-01"
VERIFIED = "verified"
UNVERIFIED = "unverified"
GIB = 1024**3


@dataclass(frozen=True)
class FargatePrice:
    """Fargate on Linux: USD per vCPU-hour and per GB-hour of a task's size, billed per second (a minute at least)."""

    vcpu_hour: float
    gb_hour: float
    status: str
    note: str
    source: str = "https://aws.amazon.com/fargate/pricing/"

    def per_second(self, vcpus: float, memory_gb: float, spot: bool = False) -> float:
        """USD for one second of a task of `vcpus` and `memory_gb`, on demand or on Spot at the modelled discount."""
        price = (vcpus * self.vcpu_hour + memory_gb * self.gb_hour) / 3600
        return price * (1 - FARGATE_SPOT_DISCOUNT) if spot else price


FARGATE_X86 = FargatePrice(
    vcpu_hour=0.04048,
    gb_hour=0.004445,
    status=UNVERIFIED,
    note="the vCPU price is verified by the worked example on https://aws.amazon.com/ecs/pricing/ "
    "('$0.000011244 per vCPU second'); the GB-hour comes from third-party copies of the table",
)
FARGATE_ARM64 = FargatePrice(vcpu_hour=0.03238, gb_hour=0.00356, status=UNVERIFIED, note="third-party copies of the table")
# "Fargate Spot ... at up to a 70% discount off the regular Fargate price" (verified); the discount varies with spare
# capacity and AWS publishes the current one only on the page. The plan takes the most, 0.7 off: a Spot cost is a floor.
FARGATE_SPOT_DISCOUNT = 0.7
FARGATE_SPOT_STATUS = VERIFIED


@dataclass(frozen=True)
class SqsPrice:
    """SQS: USD per million requests (each 64 KiB of a payload is one request), standard and FIFO queues."""

    standard_million: float = 0.40
    fifo_million: float = 0.50
    status: str = UNVERIFIED
    note: str = "third-party copies of the table; the first tier, up to 100 billion requests a month"
    source: str = "https://aws.amazon.com/sqs/pricing/"


@dataclass(frozen=True)
class DynamoDbPrice:
    """DynamoDB on demand, Standard table class: USD per million write and read request units, and per GB-month stored."""

    write_million: float = 0.625
    read_million: float = 0.125
    storage_gb_month: float = 0.25
    status: str = UNVERIFIED
    note: str = (
        "request units from third-party copies of the table after AWS halved on-demand prices (November 2024); "
        "storage verified ('prices start from $0.25 per GB-month')"
    )
    source: str = "https://aws.amazon.com/dynamodb/pricing/on-demand/"


@dataclass(frozen=True)
class DynamoDbProvisionedPrice:
    """DynamoDB provisioned capacity, Standard table class: USD per write and per read capacity unit-hour."""

    write_unit_hour: float = 0.00065
    read_unit_hour: float = 0.00013
    status: str = UNVERIFIED
    note: str = "third-party copies of the table; a write capacity unit is one write of up to 1 KB a second"
    source: str = "https://aws.amazon.com/dynamodb/pricing/provisioned/"

    def write_million(self, utilisation: float) -> float:
        """USD per million write units when the provisioned units are used `utilisation` of the time (autoscaling's target)."""
        return self.write_unit_hour / 3600 / utilisation * 1_000_000

    def read_million(self, utilisation: float) -> float:
        return self.read_unit_hour / 3600 / utilisation * 1_000_000


@dataclass(frozen=True)
class LambdaPrice:
    """Lambda: USD per million requests and per GB-second of duration, x86 and Arm (first tier)."""

    request_million: float = 0.20
    x86_gb_second: float = 0.0000166667
    arm64_gb_second: float = 0.0000133334
    status: str = UNVERIFIED
    note: str = (
        "requests and the x86 duration verified ('$0.20 per 1 million requests', '$0.00001667 for every GB-second', "
        "https://docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/lambda.html); Arm from third-party copies"
    )
    source: str = "https://aws.amazon.com/lambda/pricing/"


@dataclass(frozen=True)
class S3Price:
    """S3 Standard: USD per 1,000 PUT/COPY/POST/LIST requests and per 1,000 GET/HEAD requests (DELETE is free)."""

    put_thousand: float = 0.005
    get_thousand: float = 0.0004
    status: str = UNVERIFIED
    note: str = "third-party copies of the table"
    source: str = "https://aws.amazon.com/s3/pricing/"


@dataclass(frozen=True)
class LogsPrice:
    """CloudWatch Logs, Standard class: USD per GB ingested and per GB-month archived."""

    ingest_gb: float = 0.50
    storage_gb_month: float = 0.03
    status: str = UNVERIFIED
    note: str = "third-party copies of the table"
    source: str = "https://aws.amazon.com/cloudwatch/pricing/"


SQS = SqsPrice()
DYNAMODB = DynamoDbPrice()
DYNAMODB_PROVISIONED = DynamoDbProvisionedPrice()
LAMBDA = LambdaPrice()
S3 = S3Price()
LOGS = LogsPrice()

"""The bucket files are dropped in (the stack's own, or one you bring), and the DynamoDB tables of the ledger and the
task results."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from dropq.topology import S3_BUCKET_NAME, Provisioned, TableSpec, Topology
from infra.cloud.nag import acknowledge, acknowledge_check

ACCESS_LOG_DAYS = 90
# Both buckets: no public access, S3-managed encryption, requests over TLS only.
PRIVATE_BUCKET = {
    "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
    "encryption": s3.BucketEncryption.S3_MANAGED,
    "enforce_ssl": True,
}


# A KMS key's ARN (an alias is not accepted: IAM policies name keys, not aliases):
# https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#key-id-key-ARN
IP_ADDRESS = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$")
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]{36}$")


def is_bucket_name(name: object) -> bool:
    """Whether `name` keeps the rules of https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
    that a pattern can check (the topology's pattern, no two adjacent periods, not an IP address)."""
    return isinstance(name, str) and bool(S3_BUCKET_NAME.match(name)) and ".." not in name and not IP_ADDRESS.match(name)


@dataclass(frozen=True)
class ExistingBucket:
    """A bucket dropq attaches to instead of creating one (`-c bucket=NAME`), and the customer-managed KMS key its
    objects are encrypted with, if any (`-c bucket-kms-key=ARN`)."""

    name: str
    kms_key_arn: str | None = None

    def __post_init__(self) -> None:
        if not is_bucket_name(self.name):
            raise ValueError(f"-c bucket={self.name!r} is not an S3 bucket name (3-63 of a-z 0-9 . -, no '..', not an IP address)")
        if self.kms_key_arn is not None and not (isinstance(self.kms_key_arn, str) and KMS_KEY_ARN.match(self.kms_key_arn)):
            raise ValueError(f"-c bucket-kms-key={self.kms_key_arn!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID)")


def _warm(reads: int | None, writes: int | None) -> dynamodb.WarmThroughput | None:
    """Warm throughput to provision (topology.capacity), or None for on-demand's default ramp."""
    if reads is None and writes is None:
        return None
    return dynamodb.WarmThroughput(read_units_per_second=reads, write_units_per_second=writes)


class Storage(Construct):
    """S3 bucket (its own: private, TLS only, encrypted, access-logged; or an existing one, left as it is) and the
    topology's tables (on demand or, for the ledger, provisioned and autoscaled; TTL, PITR)."""

    def __init__(self, scope: Construct, id: str, topology: Topology, prefix: str, existing: ExistingBucket | None = None) -> None:
        super().__init__(scope, id)
        self.existing = existing
        self.access_logs: s3.Bucket | None = None
        # The key an existing bucket's objects are encrypted with, whose use workers are granted (workers.py).
        self.bucket_key: kms.IKey | None = None
        if existing is None:
            self.bucket: s3.IBucket = self._own_bucket()
        else:
            # Imported by name: nothing is created for it or changed on it (no policy, logging, lifecycle or removal
            # policy), so `cdk destroy` leaves it and its data as they were. Only the inbox notification is added to it
            # (producer.py), as one notification among those it already has.
            self.bucket = s3.Bucket.from_bucket_name(self, "Bucket", existing.name)
            if existing.kms_key_arn is not None:
                self.bucket_key = kms.Key.from_key_arn(self, "BucketKey", existing.kms_key_arn)
        capacity = topology.capacity
        self.ledger = self._table(
            "Ledger",
            topology.ledger_table,
            prefix,
            cdk.RemovalPolicy.RETAIN,
            warm=_warm(capacity.ledger_warm_reads, capacity.ledger_warm_writes),
            index_warm=_warm(None, capacity.index_warm_writes),
            provisioned=capacity.ledger_provisioned,
        )
        # Results are a cache of task return values with a TTL of days; nothing to keep.
        self.results = self._table("Results", topology.results_table, prefix, cdk.RemovalPolicy.DESTROY)

    def _own_bucket(self) -> s3.Bucket:
        """The stack's bucket, versioned and access-logged into a bucket of its own; both outlive the stack."""
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            **PRIVATE_BUCKET,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(ACCESS_LOG_DAYS))],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        acknowledge(self.access_logs, "AwsSolutions-S1", "This is the access-log bucket; logging it into itself would loop.")
        acknowledge_check(self.access_logs, "CKV_AWS_18", "This is the access-log bucket; logging it into itself would loop.")
        acknowledge_check(
            self.access_logs, "CKV_AWS_21", "Access logs are written once and expire after 90 days; versions of them would only cost."
        )
        return s3.Bucket(
            self,
            "Bucket",
            **PRIVATE_BUCKET,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="bucket/",
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=cdk.Duration.days(30))],
            # Your files: `cdk destroy` leaves the bucket (README: "Tear down").
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

    def _table(
        self,
        id: str,
        spec: TableSpec,
        prefix: str,
        removal: cdk.RemovalPolicy,
        warm: dynamodb.WarmThroughput | None = None,
        index_warm: dynamodb.WarmThroughput | None = None,
        provisioned: Provisioned | None = None,
    ) -> dynamodb.Table:
        def key(name: str) -> dynamodb.Attribute:
            return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)

        table = dynamodb.Table(
            self,
            id,
            table_name=f"{prefix}{spec.name}",
            partition_key=key(spec.partition_key),
            sort_key=key(spec.sort_key) if spec.sort_key else None,
            billing_mode=dynamodb.BillingMode.PROVISIONED if provisioned else dynamodb.BillingMode.PAY_PER_REQUEST,
            read_capacity=provisioned.min_reads if provisioned else None,
            write_capacity=provisioned.min_writes if provisioned else None,
            time_to_live_attribute=spec.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=removal,
            warm_throughput=warm,
        )
        acknowledge_check(
            table,
            "CKV_AWS_119",
            "Encrypted at rest with the AWS-owned key; a customer-managed key costs a key a month and a KMS request per "
            "cached data key, and no other account or service reads these tables.",
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=key(index.partition_key),
                sort_key=key(index.sort_key),
                projection_type=dynamodb.ProjectionType[index.projection],
                warm_throughput=index_warm,
                read_capacity=provisioned.min_reads if provisioned else None,
                write_capacity=provisioned.min_writes if provisioned else None,
            )
        if provisioned:
            _autoscale(table, spec, provisioned)
        return table


def _autoscale(table: dynamodb.Table, spec: TableSpec, provisioned: Provisioned) -> None:
    """Target tracking on the table's and every index's read and write units, at the topology's utilisation."""
    target = provisioned.target_percent
    writes = {"min_capacity": provisioned.min_writes, "max_capacity": provisioned.max_writes}
    reads = {"min_capacity": provisioned.min_reads, "max_capacity": provisioned.max_reads}
    table.auto_scale_write_capacity(**writes).scale_on_utilization(target_utilization_percent=target)
    table.auto_scale_read_capacity(**reads).scale_on_utilization(target_utilization_percent=target)
    for index in spec.indexes:
        table.auto_scale_global_secondary_index_write_capacity(index.name, **writes).scale_on_utilization(target_utilization_percent=target)
        table.auto_scale_global_secondary_index_read_capacity(index.name, **reads).scale_on_utilization(target_utilization_percent=target)

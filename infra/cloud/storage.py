"""The bucket files are dropped in, and the DynamoDB tables of the ledger and the task results."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.cloud.nag import acknowledge, acknowledge_check
from infra.topology import Provisioned, TableSpec, Topology

ACCESS_LOG_DAYS = 90
# Both buckets: no public access, S3-managed encryption, requests over TLS only.
PRIVATE_BUCKET = {
    "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
    "encryption": s3.BucketEncryption.S3_MANAGED,
    "enforce_ssl": True,
}


def _warm(reads: int | None, writes: int | None) -> dynamodb.WarmThroughput | None:
    """Warm throughput to provision (topology.capacity), or None for on-demand's default ramp."""
    if reads is None and writes is None:
        return None
    return dynamodb.WarmThroughput(read_units_per_second=reads, write_units_per_second=writes)


class Storage(Construct):
    """S3 bucket (private, TLS only, encrypted, access-logged) and the topology's tables (on demand or, for the ledger,
    provisioned and autoscaled; TTL, PITR)."""

    def __init__(self, scope: Construct, id: str, topology: Topology, prefix: str) -> None:
        super().__init__(scope, id)
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
        self.bucket = s3.Bucket(
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

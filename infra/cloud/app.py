"""`cdk synth` / `cdk deploy` entry point (cdk.json runs `python -m infra.cloud.app`).

Context: `-c stack=NAME` names the stack (and prefixes its queues and tables); `-c profile=production`
deploys the topology sized for 10,000 files/s (dropq/topology.py: PROFILES); `-c ledger-capacity=provisioned` puts
the ledger on autoscaled provisioned capacity, cheaper for steady traffic (dropq/topology.py: Provisioned);
`-c pipeline-modules=mypackage.pipelines` has the workers import your own pipelines (a package the image installs); `-c bucket=NAME`
attaches the stack to an existing bucket instead of creating one, and `-c bucket-kms-key=ARN` names the customer-managed
KMS key its objects are encrypted with (infra/cloud/storage.py: ExistingBucket); the account and region are
those of your AWS profile when it has any, or left to deploy time (`cdk synth` needs no account).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from dropq.settings import MODULE_PATTERN
from dropq.topology import PROFILES, Provisioned
from infra.cloud.stack import DropqStack
from infra.cloud.storage import ExistingBucket

DEFAULT_STACK_NAME = "dropq"
LEDGER_CAPACITIES = ("on-demand", "provisioned")
CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """The context (feature flags) of cdk.json, which the CDK CLI passes to the app; tests pass it the same way."""
    return json.loads(CDK_JSON.read_text())["context"]


def build_app(app: cdk.App | None = None) -> tuple[cdk.App, DropqStack]:
    """The CDK app with its one stack, checked by cdk-nag's AWS Solutions pack at synthesis."""
    app = app or cdk.App()
    name = app.node.try_get_context("stack") or DEFAULT_STACK_NAME
    profile = app.node.try_get_context("profile") or "default"
    if profile not in PROFILES:
        raise ValueError(f"-c profile={profile!r} names no topology profile; known: {', '.join(PROFILES)}")
    topology = PROFILES[profile]
    ledger_capacity = app.node.try_get_context("ledger-capacity") or "on-demand"
    if ledger_capacity not in LEDGER_CAPACITIES:
        raise ValueError(f"-c ledger-capacity={ledger_capacity!r} is not one of: {', '.join(LEDGER_CAPACITIES)}")
    if ledger_capacity == "provisioned":
        topology = dataclasses.replace(topology, capacity=dataclasses.replace(topology.capacity, ledger_provisioned=Provisioned()))
    bucket = app.node.try_get_context("bucket") or None
    bucket_kms_key = app.node.try_get_context("bucket-kms-key") or None
    if bucket_kms_key is not None and bucket is None:
        raise ValueError(f"-c bucket-kms-key={bucket_kms_key!r} needs -c bucket=NAME: the stack's own bucket is encrypted with S3's key")
    existing_bucket = ExistingBucket(name=bucket, kms_key_arn=bucket_kms_key) if bucket is not None else None
    modules = tuple(m.strip() for m in (app.node.try_get_context("pipeline-modules") or "").split(",") if m.strip())
    for module in modules:
        if not MODULE_PATTERN.match(module):
            raise ValueError(f"-c pipeline-modules: {module!r} is not a Python module path like 'mypackage.pipelines'")
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    stack = DropqStack(
        app,
        name,
        topology=topology,
        profile=profile,
        existing_bucket=existing_bucket,
        pipeline_modules=modules,
        env=env,
        description="dropq: drop files in S3, Celery workers on SQS and Fargate process them",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


if __name__ == "__main__":
    build_app()[0].synth()

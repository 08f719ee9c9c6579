"""Bring your own bucket: `-c bucket=NAME` attaches the stack to an existing bucket instead of creating one; the inbox
notification is added beside the bucket's others, workers reach only dropq's prefixes, and `cdk destroy` leaves it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from dropq.deployment import BUCKET_OUTPUT
from dropq.settings import BUCKET
from dropq.topology import TOPOLOGY
from infra.cloud.app import build_app, cdk_json_context
from tests.stack.conftest import Synthesized
from tests.stack.test_stack import actions, checkov, statements

EXISTING = "my-existing-data"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BUCKET_TYPES = ("AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::S3::AccessPoint", "AWS::S3::BucketInventoryConfiguration")


def synthesize(outdir: Path, **context: str) -> Synthesized:
    """`cdk synth` with extra context, as `npx cdk deploy -c KEY=VALUE` runs it (cdk-nag raises on an unacknowledged error)."""
    app, stack = build_app(cdk.App(outdir=str(outdir), context={**cdk_json_context(), **context}))
    app.synth()
    template = Template.from_json(json.loads((outdir / f"{stack.stack_name}.template.json").read_text()))
    return Synthesized(stack=stack, template=template, outdir=outdir)


@pytest.fixture(scope="module")
def attached(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("cdk.out"), bucket=EXISTING)


def rendered(value: Any) -> str:
    """A resource or condition value as one string, the partition as in the commercial regions."""
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(rendered(part) for part in parts)
    if value == {"Ref": "AWS::Partition"}:
        return "aws"
    return value if isinstance(value, str) else json.dumps(value)


def s3_grants(statements_: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Resource (rendered) -> the S3 actions granted on it."""
    granted: dict[str, set[str]] = {}
    for statement in statements_:
        s3_actions = {a for a in actions(statement) if a.startswith("s3:")}
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources if s3_actions else []:
            granted.setdefault(rendered(resource), set()).update(s3_actions)
    return granted


def test_no_bucket_or_bucket_policy_is_created_so_destroy_leaves_the_bucket_as_it_was(attached: Synthesized) -> None:
    # Given a stack attached to an existing bucket, when it is destroyed, CloudFormation deletes what the template
    # holds: nothing of S3's, and the notification resource, which puts back the bucket's other notifications.
    assert {kind: attached.of_type(kind) for kind in BUCKET_TYPES} == {kind: {} for kind in BUCKET_TYPES}
    naming = {attached.resources[k]["Type"] for k in attached.resources if EXISTING in json.dumps(attached.resources[k])}
    assert naming == {
        "Custom::S3BucketNotifications",  # the inbox notification, unmanaged
        "AWS::IAM::Policy",  # the workers' prefixes, the notification handler's Get/PutBucketNotification
        "AWS::SQS::QueuePolicy",  # S3 may send to the inbox events queue for this bucket
        "AWS::Lambda::Function",  # the producer's settings name it
        "AWS::ECS::TaskDefinition",  # and the workers'
    }


def test_the_default_mode_still_creates_its_buckets_and_retains_them(synthesized: Synthesized) -> None:
    buckets = {k: r for k, r in synthesized.resources.items() if r["Type"] == "AWS::S3::Bucket"}
    assert sorted(k.rstrip("0123456789ABCDEF") for k in buckets) == ["StorageAccessLogs", "StorageBucket"]
    assert all(r["DeletionPolicy"] == "Retain" and r["UpdateReplacePolicy"] == "Retain" for r in buckets.values())
    (notification,) = synthesized.of_type("Custom::S3BucketNotifications").values()
    assert notification["Managed"] is True, "the stack's own bucket: its notifications are the stack's alone"


def test_the_inbox_notification_is_added_unmanaged_beside_the_buckets_others(attached: Synthesized) -> None:
    (notification,) = attached.of_type("Custom::S3BucketNotifications").values()
    assert notification["BucketName"] == EXISTING
    # CDK's handler merges an unmanaged notification with those on the bucket and removes only its own on delete.
    assert notification["Managed"] is False
    assert set(notification["NotificationConfiguration"]) == {"QueueConfigurations"}, "no EventBridge, topic or function"
    (config,) = notification["NotificationConfiguration"]["QueueConfigurations"]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    assert config["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": TOPOLOGY.inbox_prefix}]}}
    assert config["QueueArn"]["Fn::GetAtt"][0].startswith("QueuesInboxEvents")
    handler = s3_grants(statements(attached, "StorageBucketNotificationsHandlerPolicy"))
    assert handler == {f"arn:aws:s3:::{EXISTING}": {"s3:GetBucketNotification", "s3:PutBucketNotification"}}


def test_s3_may_send_to_the_inbox_events_queue_for_this_bucket_in_this_account_only(attached: Synthesized) -> None:
    (document,) = [
        p["PolicyDocument"] for p in attached.of_type("AWS::SQS::QueuePolicy").values() if "QueuesInboxEvents" in json.dumps(p["Queues"])
    ]
    from_s3 = [s for s in document["Statement"] if s.get("Principal") == {"Service": "s3.amazonaws.com"}]
    (allow,) = [s for s in from_s3 if s["Effect"] == "Allow"]
    assert rendered(allow["Condition"]["ArnLike"]["aws:SourceArn"]) == f"arn:aws:s3:::{EXISTING}"
    (deny,) = [s for s in from_s3 if s["Effect"] == "Deny"]
    assert deny["Action"] == "sqs:SendMessage"
    assert deny["Condition"] == {"StringNotEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_workers_reach_only_the_inbox_output_and_reports_prefixes_and_the_producer_no_object(attached: Synthesized) -> None:
    worker = statements(attached, "TaskRole")
    assert s3_grants(worker) == {
        f"arn:aws:s3:::{EXISTING}/{TOPOLOGY.inbox_prefix}*": {"s3:GetObject"},
        f"arn:aws:s3:::{EXISTING}/{TOPOLOGY.output_prefix}*": {"s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"},
        f"arn:aws:s3:::{EXISTING}/{TOPOLOGY.reports_prefix}*": {"s3:PutObject"},
    }
    assert s3_grants(statements(attached, "ProducerRole")) == {}
    every = [s for policy in attached.of_type("AWS::IAM::Policy").values() for s in policy["PolicyDocument"]["Statement"]]
    objects = {r for r in s3_grants(every) if r.startswith(f"arn:aws:s3:::{EXISTING}/")}
    prefixes = (TOPOLOGY.inbox_prefix, TOPOLOGY.output_prefix, TOPOLOGY.reports_prefix)
    assert objects == {f"arn:aws:s3:::{EXISTING}/{prefix}*" for prefix in prefixes}, "no object outside dropq's prefixes"
    assert not [s for s in every if "s3:ListBucket" in actions(s) and "s3:prefix" not in json.dumps(s.get("Condition", {}))]
    assert not [s for s in worker if any(a.startswith("kms:") for a in actions(s))], "no key named, none granted"


def test_outputs_and_settings_name_the_existing_bucket(attached: Synthesized) -> None:
    outputs = {key: output["Value"] for key, output in attached.template.to_json()["Outputs"].items()}
    assert outputs[BUCKET_OUTPUT] == EXISTING
    assert outputs["Inbox"] == f"s3://{EXISTING}/{TOPOLOGY.inbox_prefix}"
    (function,) = [p for k, p in attached.of_type("AWS::Lambda::Function").items() if k.startswith("ProducerFunction")]
    assert function["Environment"]["Variables"][BUCKET] == EXISTING
    for task in attached.of_type("AWS::ECS::TaskDefinition").values():
        (container,) = task["ContainerDefinitions"]
        assert {"Name": BUCKET, "Value": EXISTING} in container["Environment"]


def test_with_a_known_region_cdk_nag_accepts_the_prefix_grants_on_the_literal_arn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the account and region of an AWS profile (as `cdk deploy` has them), the partition is no longer a token.
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    synthesized = synthesize(tmp_path, bucket=EXISTING)
    worker = json.dumps(statements(synthesized, "TaskRole"))
    assert f'"arn:aws:s3:::{EXISTING}/{TOPOLOGY.inbox_prefix}*"' in worker


def test_a_customer_managed_key_is_granted_to_workers_through_s3_only(tmp_path: Path) -> None:
    synthesized = synthesize(tmp_path, bucket=EXISTING, **{"bucket-kms-key": KEY_ARN})
    for pool in TOPOLOGY.pools:
        (kms,) = [s for s in statements(synthesized, f"Pool{pool.name}TaskTaskRole") if any(a.startswith("kms:") for a in actions(s))]
        assert set(actions(kms)) == {"kms:Decrypt", "kms:GenerateDataKey"} and kms["Resource"] == KEY_ARN
        assert rendered(kms["Condition"]["StringEquals"]["kms:ViaService"]) == 's3.{"Ref": "AWS::Region"}.amazonaws.com'
    assert not [s for s in statements(synthesized, "ProducerRole") if any(a.startswith("kms:") for a in actions(s))]
    assert synthesized.of_type("AWS::KMS::Key") == {}, "the key is imported, its policy left alone"


@pytest.mark.parametrize("name", ["My_Bucket", "ab", "a..b", "192.168.5.4", "-data", "data-", "x" * 64])
def test_a_bucket_name_s3_would_refuse_is_refused_naming_it(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(f"-c bucket={name!r}")):
        build_app(cdk.App(outdir=str(tmp_path), context={**cdk_json_context(), "bucket": name}))


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"bucket": EXISTING, "bucket-kms-key": "alias/data"}, "'alias/data'"),
        ({"bucket-kms-key": KEY_ARN}, repr(KEY_ARN)),  # the stack's own bucket has S3's key
    ],
)
def test_a_key_that_is_not_an_arn_or_without_a_bucket_is_refused_naming_it(context: dict[str, str], named: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(f"-c bucket-kms-key={named}")):
        build_app(cdk.App(outdir=str(tmp_path), context={**cdk_json_context(), **context}))


def test_cfn_lint_finds_no_error_with_an_existing_bucket(attached: Synthesized) -> None:
    from cfnlint.api import lint_all

    template = (attached.outdir / f"{attached.stack.stack_name}.template.json").read_text()
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in lint_all(template) if m.rule.id.startswith("E")]
    assert errors == []


def test_checkov_finds_nothing_unacknowledged_with_an_existing_bucket(attached: Synthesized) -> None:
    report = checkov(attached.outdir / f"{attached.stack.stack_name}.template.json")
    failed = [f"{f['check_id']} {f['check_name']} on {f['resource']}" for f in report["results"]["failed_checks"]]
    assert report["summary"]["passed"] > 100 and failed == []

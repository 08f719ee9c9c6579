"""No drift: what `dropq up` provisions in moto has the attributes the synthesized stack declares for AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dropq.settings import Settings
from tests.stack.conftest import Synthesized

QUEUE_ATTRIBUTES = {
    "VisibilityTimeout": "VisibilityTimeout",
    "MessageRetentionPeriod": "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
}


def declared_queues(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Physical queue name -> declared properties, with the dead-letter target resolved to its queue name."""
    resources = synthesized.resources
    queues = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    named = {}
    for props in queues.values():
        props = dict(props)
        if "RedrivePolicy" in props:
            target = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            props["RedrivePolicy"] = {**props["RedrivePolicy"], "deadLetterTargetArn": queues[target]["QueueName"]}
        named[props["QueueName"]] = props
    return named


def test_local_queues_match_the_stack(synthesized: Synthesized, moto_settings: Settings) -> None:
    sqs = moto_settings.client("sqs")
    declared = declared_queues(synthesized)
    assert synthesized.stack.prefix == moto_settings.prefix, "the default stack name gives the local names"
    for name, props in declared.items():
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        actual = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for attribute in QUEUE_ATTRIBUTES:
            if attribute in props:
                assert int(actual[attribute]) == props[attribute], f"{name}.{attribute}"
        if "RedrivePolicy" in props:
            redrive = json.loads(actual["RedrivePolicy"])
            assert int(redrive["maxReceiveCount"]) == props["RedrivePolicy"]["maxReceiveCount"], name
            assert redrive["deadLetterTargetArn"].rsplit(":", 1)[1] == props["RedrivePolicy"]["deadLetterTargetArn"], name
        else:
            assert "RedrivePolicy" not in actual, name


@pytest.mark.parametrize("table", ["ledger", "results"])
def test_local_tables_match_the_stack(synthesized: Synthesized, moto_settings: Settings, table: str) -> None:
    name = moto_settings.physical_name(table)
    (props,) = [p for p in synthesized.of_type("AWS::DynamoDB::Table").values() if p["TableName"] == name]
    dynamodb = moto_settings.client("dynamodb")
    actual = dynamodb.describe_table(TableName=name)["Table"]
    assert actual["KeySchema"] == props["KeySchema"]
    assert sorted(actual["AttributeDefinitions"], key=str) == sorted(props["AttributeDefinitions"], key=str)
    assert actual["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
    indexes = {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in actual.get("GlobalSecondaryIndexes", [])}
    assert indexes == {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in props.get("GlobalSecondaryIndexes", [])}
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", props["TimeToLiveSpecification"]["AttributeName"])

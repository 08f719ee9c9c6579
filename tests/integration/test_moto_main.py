"""The local moto server's DynamoDB queries (infra/local/moto_main.py groups a table's items by partition key until its
next write): every Query answers what moto's walk over all items answers, through puts, updates, deletes and
transactions that move items between partitions."""

from __future__ import annotations

import uuid
from typing import Any

from dropq.settings import Settings


def _table(client: Any, name: str | None = None) -> str:
    name = name or f"groups-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "g", "t")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byg",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "t", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _in_index(client: Any, table: str, group: str) -> list[str]:
    response = client.query(
        TableName=table,
        IndexName="byg",
        KeyConditionExpression="g = :g",
        ExpressionAttributeValues={":g": {"S": group}},
        ScanIndexForward=False,
    )
    return [item["sk"]["S"] for item in response["Items"]]


def _in_partition(client: Any, table: str, pk: str) -> list[str]:
    response = client.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": pk}})
    return [item["sk"]["S"] for item in response["Items"]]


def _put(client: Any, table: str, pk: str, sk: str, group: str, at: str) -> None:
    client.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}, "g": {"S": group}, "t": {"S": at}})


def test_queries_follow_every_kind_of_write_between_them(moto_settings: Settings) -> None:
    client = moto_settings.client("dynamodb")
    table = _table(client)
    for n in range(6):
        _put(client, table, f"p{n % 2}", f"s{n}", "a" if n < 4 else "b", f"2026-12-02T00:00:0{n}")
    assert _in_index(client, table, "a") == ["s3", "s2", "s1", "s0"] and _in_index(client, table, "b") == ["s5", "s4"]
    assert _in_partition(client, table, "p0") == ["s0", "s2", "s4"]

    # An update moves an item to another index partition; a put adds one; a delete takes one away.
    client.update_item(
        TableName=table,
        Key={"pk": {"S": "p1"}, "sk": {"S": "s1"}},
        UpdateExpression="SET g = :b",
        ExpressionAttributeValues={":b": {"S": "b"}},
    )
    assert _in_index(client, table, "a") == ["s3", "s2", "s0"] and _in_index(client, table, "b") == ["s5", "s4", "s1"]
    _put(client, table, "p0", "s6", "a", "2026-12-02T00:00:06")
    client.delete_item(TableName=table, Key={"pk": {"S": "p0"}, "sk": {"S": "s0"}})
    assert _in_index(client, table, "a") == ["s6", "s3", "s2"] and _in_partition(client, table, "p0") == ["s2", "s4", "s6"]
    # An update that removes the index key takes the item out of the index (a sparse index, as `failed` is).
    client.update_item(TableName=table, Key={"pk": {"S": "p0"}, "sk": {"S": "s2"}}, UpdateExpression="REMOVE g")
    assert _in_index(client, table, "a") == ["s6", "s3"]
    # A transaction, and a batch.
    client.transact_write_items(
        TransactItems=[
            {
                "Put": {
                    "TableName": table,
                    "Item": {"pk": {"S": "p2"}, "sk": {"S": "s7"}, "g": {"S": "a"}, "t": {"S": "2026-12-02T00:00:07"}},
                }
            },
            {"Delete": {"TableName": table, "Key": {"pk": {"S": "p1"}, "sk": {"S": "s3"}}}},
        ]
    )
    assert _in_index(client, table, "a") == ["s7", "s6"] and _in_partition(client, table, "p2") == ["s7"]
    client.batch_write_item(
        RequestItems={
            table: [
                {"PutRequest": {"Item": {"pk": {"S": "p2"}, "sk": {"S": "s8"}, "g": {"S": "b"}, "t": {"S": "2026-12-02T00:00:08"}}}},
                {"DeleteRequest": {"Key": {"pk": {"S": "p1"}, "sk": {"S": "s5"}}}},
            ]
        }
    )
    assert _in_index(client, table, "b") == ["s8", "s4", "s1"] and _in_partition(client, table, "p1") == ["s1"]
    assert _in_index(client, table, "none") == [] and _in_partition(client, table, "none") == []


def test_a_table_made_again_under_its_name_is_queried_afresh(moto_settings: Settings) -> None:
    client = moto_settings.client("dynamodb")
    table = _table(client)
    _put(client, table, "p", "old", "a", "2026-12-02T00:00:00")
    assert _in_index(client, table, "a") == ["old"]
    client.delete_table(TableName=table)
    client.get_waiter("table_not_exists").wait(TableName=table)
    _table(client, table)
    assert _in_index(client, table, "a") == []

"""The DynamoDB meter (infra/local/meter.py) at a real moto server: which table, index and partition key each request is
charged to, and how many units, as AWS bills them."""

from __future__ import annotations

import base64
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dropq.settings import Settings, local_settings
from infra.local.meter import Access, item_size, read_meter, read_units
from infra.local.server import MotoServer, free_port

TABLE = "metered"
BASE = None
KEYS_ONLY = "by_team_keys"  # team / tier, KEYS_ONLY
ALL = "by_team_all"  # team / tier, ALL
NOTE = "by_team_note"  # team, INCLUDE note


@dataclass(frozen=True)
class Metered:
    """A metered moto server's DynamoDB client and its meter."""

    dynamodb: Any
    meter: Path
    settings: Settings

    def client(self) -> Any:
        """Another DynamoDB client of the server."""
        return self.settings.client("dynamodb")

    def during(self, action: Callable[[], object]) -> list[Access]:
        """The accesses the server charged while `action` ran (the server writes them before it answers)."""
        seen = len(read_meter(self.meter))
        action()
        return read_meter(self.meter)[seen:]

    def put(self, item: dict[str, Any], **kwargs: Any) -> list[Access]:
        return self.during(lambda: self.dynamodb.put_item(TableName=TABLE, Item=item, **kwargs))

    def update(self, pk: str, expression: str, values: dict[str, Any] | None = None, **kwargs: Any) -> list[Access]:
        extra = {"ExpressionAttributeValues": values} if values else {}
        return self.during(lambda: self.dynamodb.update_item(TableName=TABLE, Key=key(pk), UpdateExpression=expression, **extra, **kwargs))


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Metered:
    """A moto server metering to a file, with a table keyed pk/sk and three indexes on `team`."""
    state = tmp_path_factory.mktemp("meter")
    server = MotoServer(free_port(), state / "moto.log", meter_to=state / "meter.jsonl")
    request.addfinalizer(server.stop)  # before start(): a server that never answered is stopped too
    server.start()
    settings = local_settings(port=server.port, state_dir=str(state))
    dynamodb = settings.client("dynamodb")
    index = {"KeySchema": [{"AttributeName": "team", "KeyType": "HASH"}, {"AttributeName": "tier", "KeyType": "RANGE"}]}
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "team", "tier")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {"IndexName": KEYS_ONLY, **index, "Projection": {"ProjectionType": "KEYS_ONLY"}},
            {"IndexName": ALL, **index, "Projection": {"ProjectionType": "ALL"}},
            {
                "IndexName": NOTE,
                "KeySchema": [{"AttributeName": "team", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["note"]},
            },
        ],
    )
    return Metered(dynamodb, state / "meter.jsonl", settings)


def key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "s"}}


def item(pk: str, **attributes: str) -> dict[str, Any]:
    return {**key(pk), **{name: {"S": value} for name, value in attributes.items()}}


def s(value: str) -> dict[str, Any]:
    return {"S": value}


def charged(accesses: list[Access]) -> Counter[tuple[str | None, str, float]]:
    """(index, partition key, units) of each access, counted: two writes on one key are two."""
    return Counter((access.index, access.key, access.units) for access in accesses)


def fresh() -> tuple[str, str]:
    """A partition key and a team no other test uses."""
    return f"pk-{uuid.uuid4().hex}", f"team-{uuid.uuid4().hex}"


def test_item_sizes_follow_dynamodbs_rules() -> None:
    assert item_size({"a": s("héllo")}) == 1 + 6, "a string is its UTF-8 length"
    assert item_size({"n": {"N": "123.45"}}) == 1 + 3 + 1, "a number is 1 byte per 2 significant digits, plus 1"
    assert item_size({"n": {"N": "-0.0100"}}) == 1 + 1 + 1, "leading and trailing zeros do not count"
    assert item_size({"b": {"B": base64.b64encode(bytes(10)).decode()}}) == 1 + 10, "a binary is its raw length"
    assert item_size({"t": {"BOOL": True}, "z": {"NULL": True}}) == 2 + 2
    assert item_size({"l": {"L": [s("ab"), {"N": "1"}]}}) == 1 + 3 + (1 + 2) + (1 + 2), "3 bytes, plus 1 per element"
    assert item_size({"m": {"M": {"k": s("v")}}}) == 1 + 3 + (1 + 1 + 1)
    assert item_size({"e": {"L": []}, "ss": {"SS": ["ab", "c"]}}) == (1 + 3) + (2 + 3)


def test_a_put_writes_the_table_and_each_index_it_has_keys_for(metered: Metered) -> None:
    pk, team = fresh()
    accesses = metered.put(item(pk, team=team, tier="a", note="n", body="b"))
    assert charged(accesses) == {(BASE, pk, 1.0): 1, (KEYS_ONLY, team, 1.0): 1, (ALL, team, 1.0): 1, (NOTE, team, 1.0): 1}
    assert {(a.op, a.table, a.kind, a.failed) for a in accesses} == {("PutItem", TABLE, "write", False)}

    # An item without the index keys is not in the indexes: they cost nothing.
    bare, _ = fresh()
    assert charged(metered.put(item(bare, body="b"))) == {(BASE, bare, 1.0): 1}


def test_an_update_rewrites_only_the_indexes_that_project_what_changed(metered: Metered) -> None:
    pk, team = fresh()
    metered.put(item(pk, team=team, tier="a", note="n", body="b"))

    # body is projected by ALL alone; note by ALL and the INCLUDE index; KEYS_ONLY carries neither.
    assert charged(metered.update(pk, "SET body = :v", {":v": s("b2")})) == {(BASE, pk, 1.0): 1, (ALL, team, 1.0): 1}
    assert charged(metered.update(pk, "SET note = :v", {":v": s("n2")})) == {
        (BASE, pk, 1.0): 1,
        (ALL, team, 1.0): 1,
        (NOTE, team, 1.0): 1,
    }


def test_changing_an_index_key_deletes_the_old_entry_and_puts_the_new_one(metered: Metered) -> None:
    pk, team = fresh()
    metered.put(item(pk, team=team, tier="a", note="n"))

    # tier is the range key of two indexes: two writes each. The INCLUDE index neither keys on it nor projects it.
    assert charged(metered.update(pk, "SET tier = :v", {":v": s("b")})) == {
        (BASE, pk, 1.0): 1,
        (KEYS_ONLY, team, 1.0): 2,
        (ALL, team, 1.0): 2,
    }

    # A new partition key moves every entry to another partition: a delete on the old, a put on the new.
    _, other = fresh()
    moved = charged(metered.update(pk, "SET team = :v", {":v": s(other)}))
    assert moved == {(BASE, pk, 1.0): 1, **{(index, t, 1.0): 1 for index in (KEYS_ONLY, ALL, NOTE) for t in (team, other)}}


def test_removing_an_index_key_deletes_the_entry_and_a_delete_deletes_the_rest(metered: Metered) -> None:
    pk, team = fresh()
    metered.put(item(pk, team=team, tier="a"))

    assert charged(metered.update(pk, "REMOVE tier")) == {(BASE, pk, 1.0): 1, (KEYS_ONLY, team, 1.0): 1, (ALL, team, 1.0): 1}
    deleted = metered.during(lambda: metered.dynamodb.delete_item(TableName=TABLE, Key=key(pk)))
    assert charged(deleted) == {(BASE, pk, 1.0): 1, (NOTE, team, 1.0): 1}, "only the INCLUDE index still held it"
    assert {a.op for a in deleted} == {"DeleteItem"}


def test_a_failed_condition_charges_the_table_write_and_no_index(metered: Metered) -> None:
    pk, team = fresh()
    metered.put(item(pk, team=team, tier="a"))

    def moving_update() -> None:
        with pytest.raises(ClientError, match="ConditionalCheckFailed"):
            metered.dynamodb.update_item(
                TableName=TABLE,
                Key=key(pk),
                UpdateExpression="SET team = :v",
                ConditionExpression="attribute_not_exists(pk)",
                ExpressionAttributeValues={":v": s("elsewhere")},
            )

    accesses = metered.during(moving_update)
    assert [(a.op, a.index, a.key, a.kind, a.units, a.failed) for a in accesses] == [("UpdateItem", BASE, pk, "write", 1.0, True)]

    # A failed PutItem is charged by the larger of the item there and the item it proposed (3 KB here).
    def big_put() -> None:
        with pytest.raises(ClientError, match="ConditionalCheckFailed"):
            big = item(pk, team=team, body="x" * 2900)
            metered.dynamodb.put_item(TableName=TABLE, Item=big, ConditionExpression="attribute_not_exists(pk)")

    assert [(a.index, a.units, a.failed) for a in metered.during(big_put)] == [(BASE, 3.0, True)]


def test_an_item_of_3_kb_costs_3_write_units_where_it_is_whole(metered: Metered) -> None:
    pk, team = fresh()
    big = item(pk, team=team, tier="a", note="n", body="x" * 2900)
    assert 2 * 1024 < item_size(big) <= 3 * 1024

    # The ALL index holds the whole item; the other two hold the keys (and note): small entries.
    expected = {(BASE, pk, 3.0): 1, (ALL, team, 3.0): 1, (KEYS_ONLY, team, 1.0): 1, (NOTE, team, 1.0): 1}
    assert charged(metered.put(big)) == expected
    assert charged(metered.during(lambda: metered.dynamodb.delete_item(TableName=TABLE, Key=key(pk)))) == expected


def test_a_query_on_an_index_is_charged_to_its_partition_key_by_the_entries_it_evaluated(metered: Metered) -> None:
    _, team = fresh()
    for n in range(3):
        metered.put(item(f"{team}-{n}", team=team, tier=str(n), body="x" * 1500))

    def query(index: str, **kwargs: Any) -> list[Access]:
        values = {":t": s(team), **kwargs.pop("values", {})}
        args = {"TableName": TABLE, "IndexName": index, "KeyConditionExpression": "team = :t", "ExpressionAttributeValues": values}
        return metered.during(lambda: metered.dynamodb.query(**args, **kwargs))

    # Three entries of about 1.6 KB: 4.7 KB, rounded up to 4 KB blocks once (2), halved (eventually consistent).
    accesses = query(ALL)
    assert [(a.op, a.index, a.key, a.kind, a.units) for a in accesses] == [("Query", ALL, team, "read", 1.0)]
    # A filter throws items away after they were read: it does not make the query cheaper.
    assert charged(query(ALL, FilterExpression="body = :b", values={":b": s("none")})) == {(ALL, team, 1.0): 1}
    # Limit stops the reading; KEYS_ONLY entries are small.
    assert charged(query(ALL, Limit=1)) == {(ALL, team, 0.5): 1}
    assert charged(query(KEYS_ONLY)) == {(KEYS_ONLY, team, 0.5): 1}


def test_get_item_costs_4_kb_blocks_halved_when_eventually_consistent(metered: Metered) -> None:
    pk, _ = fresh()
    metered.put(item(pk, body="x" * 5000))

    def get(**kwargs: Any) -> list[Access]:
        return metered.during(lambda: metered.dynamodb.get_item(TableName=TABLE, Key=key(pk), **kwargs))

    assert charged(get(ConsistentRead=True)) == {(BASE, pk, 2.0): 1}
    assert charged(get()) == {(BASE, pk, 1.0): 1}
    assert charged(get(ProjectionExpression="pk")) == {(BASE, pk, 1.0): 1}, "a projection does not cut the cost"
    missing, _ = fresh()
    assert charged(metered.during(lambda: metered.dynamodb.get_item(TableName=TABLE, Key=key(missing)))) == {(BASE, missing, 0.5): 1}


def test_batch_get_item_charges_each_item_by_its_own_size(metered: Metered) -> None:
    # AWS's own example: 1.5 KB and 6.5 KB read as 4 KB + 8 KB, 3 units, not as 8 KB, 2 units.
    (small, _), (large, _) = fresh(), fresh()
    metered.put(item(small, body="x" * 1500))
    metered.put(item(large, body="x" * 6500))
    accesses = metered.during(
        lambda: metered.dynamodb.batch_get_item(RequestItems={TABLE: {"Keys": [key(small), key(large)], "ConsistentRead": True}})
    )
    assert charged(accesses) == {(BASE, small, 1.0): 1, (BASE, large, 2.0): 1}
    assert {a.op for a in accesses} == {"BatchGetItem"}


def test_transactions_cost_twice_as_much(metered: Metered) -> None:
    pk, team = fresh()
    put = {"Put": {"TableName": TABLE, "Item": item(pk, team=team, tier="a")}}
    written = metered.during(lambda: metered.dynamodb.transact_write_items(TransactItems=[put]))
    assert charged(written) == {(BASE, pk, 2.0): 1, (KEYS_ONLY, team, 2.0): 1, (ALL, team, 2.0): 1, (NOTE, team, 2.0): 1}
    read = metered.during(lambda: metered.dynamodb.transact_get_items(TransactItems=[{"Get": {"TableName": TABLE, "Key": key(pk)}}]))
    assert [(a.op, a.key, a.kind, a.units) for a in read] == [("TransactGetItems", pk, "read", 2.0)]


def test_a_scan_is_charged_to_every_partition_by_all_it_read(metered: Metered) -> None:
    pk, _ = fresh()
    metered.put(item(pk, body="x" * 9000))
    answers: list[dict[str, Any]] = []
    accesses = metered.during(lambda: answers.append(metered.dynamodb.scan(TableName=TABLE)))
    read = sum(item_size(i) for i in answers[0]["Items"])
    assert [(a.op, a.index, a.key, a.units) for a in accesses] == [("Scan", BASE, "*", read_units(read, consistent=False))]
    assert read > 9000


def test_concurrent_writes_to_one_item_are_each_charged_against_the_item_they_replaced(metered: Metered) -> None:
    # Given one item whose index key threads keep moving: each move deletes the entry the previous move put.
    pk, first = fresh()
    metered.put(item(pk, team=first, tier="a"))
    threads, moves = 6, 20

    def move(thread: int) -> None:
        client = metered.client()  # a client a thread, as separate workers have
        for n in range(moves):
            values = {":v": s(f"{pk}-{thread}-{n}")}
            client.update_item(TableName=TABLE, Key=key(pk), UpdateExpression="SET team = :v", ExpressionAttributeValues=values)

    def race() -> None:
        workers = [threading.Thread(target=move, args=(thread,)) for thread in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    accesses = metered.during(race)
    # Then every team but the first and the last was put once and deleted once: no move saw a stale item.
    last = metered.dynamodb.get_item(TableName=TABLE, Key=key(pk), ConsistentRead=True)["Item"]["team"]["S"]
    writes = Counter(a.key for a in accesses if a.index == KEYS_ONLY)
    assert writes.pop(first) == 1 and writes.pop(last) == 1
    assert set(writes.values()) == {2} and len(writes) == threads * moves - 1


def test_a_client_that_names_itself_is_told_apart_from_the_others(metered: Metered) -> None:
    from botocore.config import Config

    pk, _ = fresh()
    named = metered.settings.client("dynamodb", config=Config(user_agent_appid="dropq-bench"))
    accesses = metered.during(lambda: named.get_item(TableName=TABLE, Key=key(pk)))
    others = metered.during(lambda: metered.dynamodb.get_item(TableName=TABLE, Key=key(pk)))
    assert [a.client for a in accesses] == ["dropq-bench"] and [a.client for a in others] == [None]

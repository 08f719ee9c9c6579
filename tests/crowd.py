"""Thousands of ledger entries in seconds, for the tests that find one file among them: each a copy of an entry the
Ledger wrote, with the object's own attributes (its key in its outputs' too) and the index keys that derive from it
(their shard) made its own, and its times a millisecond apart, older than the entry copied (as files queued one after
another).

Written with BatchWriteItem, 25 items a call, where the Ledger's own writes (one conditional UpdateItem per
transition, two or three per file) would take minutes on moto for the same count.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dropq.ledger import Ledger, file_pk, iso, ledger_for
from dropq.ledger import codec as ledger_clock
from dropq.objects import ObjectRef
from dropq.settings import Settings
from dropq.shards import sharded
from infra.local.provision import provision_queues, provision_services, provision_tables

# BatchWriteItem takes at most 25 items a call: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html
BATCH_WRITE_ITEMS = 25
WRITERS = 4


def copies(ledger: Ledger, template: ObjectRef, refs: Iterable[ObjectRef]) -> int:
    """Write an entry for each of `refs` shaped as `template`'s (already in the ledger, as its writes left it); how many."""
    key = {"pk": {"S": file_pk(template.bucket, template.key)}, "sk": {"S": template.etag}}
    item = ledger.client.get_item(TableName=ledger.table_name, Key=key, ConsistentRead=True)["Item"]
    indexes = [index for index in ledger.table.indexes if index.partition_key in item]
    items = []
    for n, ref in enumerate(refs, start=1):
        pk = file_pk(ref.bucket, ref.key)
        copy: dict[str, Any] = {
            **item,
            "pk": {"S": pk},
            "sk": {"S": ref.etag},
            "bucket": {"S": ref.bucket},
            "key": {"S": ref.key},
            "size": {"N": str(ref.size)},
        }
        if "outputs" in item:
            outputs = [output["S"].replace(template.key, ref.key) for output in item["outputs"]["L"]]
            copy["outputs"] = {"L": [{"S": output} for output in outputs]}
        for index in indexes:
            value = item[index.partition_key]["S"].rsplit("#", 1)[0]
            at = datetime.fromisoformat(item[index.sort_key]["S"]) - timedelta(milliseconds=n)
            copy[index.partition_key] = {"S": sharded(value, pk, ledger.table.shards)}
            copy[index.sort_key] = {"S": iso(at)}
        items.append(copy)
    batches = [items[start : start + BATCH_WRITE_ITEMS] for start in range(0, len(items), BATCH_WRITE_ITEMS)]
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda batch: _write(ledger, batch), batches))
    return len(items)


def _write(ledger: Ledger, batch: list[dict[str, Any]]) -> None:
    pending: dict[str, Any] = {ledger.table_name: [{"PutRequest": {"Item": item}} for item in batch]}
    while pending:
        # Items DynamoDB left unwritten (throughput) are sent again until none is left.
        pending = ledger.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


@dataclass(frozen=True)
class Crowd:
    """A deployment of its own whose ledger holds `count` succeeded files queued after the needle: a key in two
    versions, the first succeeded, the newer one failed with `reason`."""

    settings: Settings
    needle: str
    reason: str
    keys: frozenset[str]


def crowd(settings: Settings, needle: str, count: int, reason: str = "not a CSV file") -> Crowd:
    """Provision a deployment under a prefix of its own on `settings`' server and fill its ledger (in seconds)."""
    settings = replace(settings, prefix=f"crowd{uuid.uuid4().hex[:6]}-")
    provision_queues(settings.client("sqs"), settings)
    provision_tables(settings.client("dynamodb"), settings)
    provision_services(settings.client("ecs"), settings)
    ledger = ledger_for(settings)
    with pytest.MonkeyPatch.context() as patch:
        # A minute before the crowd (whose copies go back a millisecond each from their template).
        patch.setattr(ledger_clock, "now", lambda: datetime.now(UTC) - timedelta(minutes=1))
        for outcome in ("succeeded", "failed"):
            ref = ObjectRef(bucket=settings.bucket, key=needle, etag=uuid.uuid4().hex, size=100)
            claim = ledger.claim(ref, "tables", "t1", worker="worker-1", lease_seconds=60)
            assert claim.owner
            if outcome == "succeeded":
                assert ledger.mark_succeeded(ref, claim.owner, [f"processed/tables/{needle}/profile.json"], 12, "0" * 64)
            else:
                assert ledger.mark_failed(ref, claim.owner, reason, "tables")
    refs = [ObjectRef(bucket=settings.bucket, key=f"incoming/crowd/all/{i:05d}.txt", etag=uuid.uuid4().hex, size=10) for i in range(count)]
    claim = ledger.claim(refs[0], "metadata", "t1", worker="worker-2", lease_seconds=60)
    assert claim.owner and ledger.mark_succeeded(refs[0], claim.owner, [f"processed/metadata/{refs[0].key}/metadata.json"], 5, "0" * 64)
    assert copies(ledger, refs[0], refs[1:]) == count - 1
    return Crowd(settings, needle, reason, frozenset(ref.key for ref in refs))

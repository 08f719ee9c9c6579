"""Reading file entries: by key (every version), by keys (BatchGetItem), and the newest of an index over its shards,
exact and bounded (the `recent` and `failed` indexes)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from dropq.ledger import codec
from dropq.ledger.codec import file_pk, iso
from dropq.ledger.states import FAILED_INDEX, RECENT
from dropq.ledger.table import LedgerTable
from dropq.shards import every_shard

# BatchGetItem reads at most 100 keys a call: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html
BATCH_GET_KEYS = 100
# Shards are read side by side by this many threads (boto3 clients are thread-safe).
READERS = 8


class FileReads(LedgerTable):
    """Bounded reads of file entries."""

    def versions(self, bucket: str, key: str) -> list[dict[str, Any]]:
        """Every entry of a key (one per object version), most recently updated first: one Query on its partition key."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": file_pk(bucket, key)}},
            "ConsistentRead": True,
        }
        items = [self._decode(item) for page in self._pages(**request) for item in page]
        return sorted(items, key=lambda i: i.get("updated_at", ""), reverse=True)

    def entries(self, keys: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        """The entries of (pk, sk) keys, in their order (those that no longer exist are left out): BatchGetItem, 100 a call."""
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            pending: dict[str, Any] = {
                self.table_name: {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in wanted[start : start + BATCH_GET_KEYS]]}
            }
            while pending:
                response = self.client.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    entry = self._decode(item)
                    found[(entry["pk"], entry["sk"])] = entry
                # DynamoDB may leave keys unread (throughput, 16 MB): asked again until none is left.
                pending = response.get("UnprocessedKeys") or {}
        return [found[key] for key in wanted if key in found]

    def _newest(self, index: str, values: list[str], limit: int, since: str | None = None) -> list[tuple[str, str, str]]:
        """The `limit` newest (sort key, pk, sk) of an index over the partition key `values` (its shards), exactly."""
        return self.index_page(index, values, limit, since)[0]

    def index_page(
        self, index: str, values: list[str], limit: int, since: str | None = None, before: tuple[str, str, str] | None = None
    ) -> tuple[list[tuple[str, str, str]], bool]:
        """The `limit` newest (sort key, pk, sk) of an index over the partition key `values` that are older than `before`
        (a row of an earlier page) and no older than `since`; and whether the index holds more of them past those.

        Two rounds, so that what is read stays near what is shown: each shard is first asked for its few newest
        (`limit` spread over the shards, three times over); only a shard whose every answer is among the `limit`
        newest may hold more of them, and it alone is asked again for up to `limit`. Rows are ordered as whole
        tuples, so that rows sharing a time (to the millisecond) are split between pages exactly: each shard's answer
        is read to the end of the time it stops at. The result is exact.
        """
        hash_key, range_key = self._index_names(index)

        def below(value: str, count: int) -> tuple[list[tuple[str, str, str]], bool]:
            """The shard's newest rows, at least `count` unless it has no more (then False), whole times only."""
            # A key condition names the sort key once: both bounds are one BETWEEN.
            condition = {
                (False, False): "#h = :h",
                (True, False): "#h = :h AND #r >= :since",
                (False, True): "#h = :h AND #r <= :before",
                (True, True): "#h = :h AND #r BETWEEN :since AND :before",
            }[(since is not None, before is not None)]
            names, values_ = {"#h": hash_key}, {":h": {"S": value}}
            if since is not None:
                values_[":since"] = {"S": since}
            if before is not None:
                values_[":before"] = {"S": before[0]}
            if "#r" in condition:
                names["#r"] = range_key
            request: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": index,
                "KeyConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values_,
                "ScanIndexForward": False,
                # One more than asked: a time that differs from the last one kept shows that time is read whole.
                "Limit": count + 1,
            }
            rows: list[tuple[str, str, str]] = []
            for page in self._pages(**request):
                rows += [row for row in ((i[range_key]["S"], i["pk"]["S"], i["sk"]["S"]) for i in page) if before is None or row < before]
                if page:
                    last = page[-1][range_key]["S"]
                    whole = [row for row in rows if row[0] > last]
                    if len(whole) >= count:
                        return sorted(whole, reverse=True), True
            return sorted(rows, reverse=True), False

        if since is not None and before is not None and before[0] < since:
            return [], False
        first = min(limit, 1 + -(-3 * limit // len(values)))
        with ThreadPoolExecutor(max_workers=min(READERS, len(values))) as pool:
            answers = dict(zip(values, pool.map(lambda value: below(value, first), values), strict=True))
            found = {row for rows, _ in answers.values() for row in rows}
            cut = heapq.nlargest(limit, found)
            kth = cut[-1] if len(cut) == limit else None
            again = [v for v, (rows, more) in answers.items() if more and first < limit and (kth is None or rows[-1] >= kth)]
            for value, answer in zip(again, pool.map(lambda value: below(value, limit), again), strict=True):
                answers[value] = answer
                found.update(answer[0])
        newest = heapq.nlargest(limit, found)
        return newest, len(found) > limit or any(more for _, more in answers.values())

    def recent(self, limit: int = 20, days: int = 2) -> list[dict[str, Any]]:
        """The files most recently queued (newest first) in the last `days` days, as they are now.

        Bounded by `limit`, whatever the traffic: one Query of at most `limit` keys per shard of a day, then one
        BatchGetItem of the newest `limit` entries.
        """
        today = codec.now().date()
        found: list[tuple[str, str, str]] = []
        for offset in range(days):
            day = (today - timedelta(days=offset)).isoformat()
            found += self._newest(RECENT, every_shard(day, self.table.shards), limit)
            if len(found) >= limit:
                break
        newest = heapq.nlargest(limit, found)
        return self.entries((pk, sk) for _, pk, sk in newest)

    def failures(self, since: datetime, until: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The files that failed from `since` (to `until`, now by default) and are still failed, newest first, at most `limit`."""
        until = until or codec.now()
        found: list[tuple[str, str, str]] = []
        day = since.date()
        while day <= until.date():
            found += self._newest(FAILED_INDEX, every_shard(day.isoformat(), self.table.shards), limit, since=iso(since))
            day += timedelta(days=1)
        newest = heapq.nlargest(limit, (row for row in found if row[0] < iso(until)))
        return self.entries((pk, sk) for _, pk, sk in newest)

"""Sharded partition keys: a value that many items share (today's files, one queue's files in flight) spread over N keys.

DynamoDB serves at most 1,000 writes/s and 3,000 reads/s on one partition key value, of a table or of an index,
and a single value never spreads over partitions. `<value>#<shard>` with N shards takes N times that; a reader
asks every shard and merges. An item's shard comes from a stable hash of its own key, so it never moves.
"""

from __future__ import annotations

import zlib


def shard_of(item_key: str, shards: int) -> int:
    """The shard of an item (0..shards-1), from a stable hash of its key: the same on every machine and run."""
    return zlib.crc32(item_key.encode("utf-8")) % shards


def sharded(value: str, item_key: str, shards: int) -> str:
    """The partition key value `<value>#<shard>` an item is written under."""
    return f"{value}#{shard_of(item_key, shards):02d}"


def every_shard(value: str, shards: int) -> list[str]:
    """Every partition key value a reader of `value` must query."""
    return [f"{value}#{shard:02d}" for shard in range(shards)]

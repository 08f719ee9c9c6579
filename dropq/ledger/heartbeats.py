"""Workers' heartbeats: pk = "worker", sk = its hostname, expiring by themselves."""

from __future__ import annotations

import time
from typing import Any

from dropq.ledger.codec import decode_item, encode
from dropq.ledger.table import LedgerTable

WORKER_PK = "worker"
# A worker whose heartbeat is older than this is not listed as alive.
WORKER_STALE_SECONDS = 90


class Heartbeats(LedgerTable):
    """The workers alive, as their heartbeats say."""

    def heartbeat(self, hostname: str, info: dict[str, Any]) -> None:
        """Record that a worker is alive (its entry expires by itself)."""
        now = int(time.time())
        item = {"pk": WORKER_PK, "sk": hostname, "last_seen": now, self.table.ttl_attribute: now + WORKER_STALE_SECONDS * 10, **info}
        self.client.put_item(TableName=self.table_name, Item={k: encode(v) for k, v in item.items()})

    def forget_worker(self, hostname: str) -> None:
        """Remove a worker that shut down cleanly."""
        self.client.delete_item(TableName=self.table_name, Key={"pk": {"S": WORKER_PK}, "sk": {"S": hostname}})

    def workers(self) -> list[dict[str, Any]]:
        """Workers whose heartbeat is recent."""
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": WORKER_PK}},
            ConsistentRead=True,
        )
        horizon = time.time() - WORKER_STALE_SECONDS
        return [w for w in (decode_item(i) for i in response.get("Items", [])) if w["last_seen"] >= horizon]

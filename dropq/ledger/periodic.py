"""A periodic task's runs, once per period whichever worker fires it: pk = "schedule#<name>", sk = the period."""

from __future__ import annotations

import time
from typing import Any

from dropq.ledger import codec
from dropq.ledger.codec import decode_item, encode, iso
from dropq.ledger.states import PERIOD_CLAIMABLE, PERIOD_HELD, RUNNING, Claim
from dropq.ledger.table import LedgerTable

# A periodic task's runs: pk = "schedule#<name>", sk = the scheduled time of the period.
SCHEDULE_PK = "schedule#"


class PeriodicRuns(LedgerTable):
    """Claims and outcomes of a schedule's periods."""

    def _period_key(self, schedule: str, period: str) -> dict[str, Any]:
        return {"pk": {"S": f"{SCHEDULE_PK}{schedule}"}, "sk": {"S": period}}

    def claim_period(self, schedule: str, period: str, task_id: str, lease_seconds: float) -> Claim:
        """Take a schedule's run for one period, unless it ran already or another run holds a live claim on it."""
        now = time.time()
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._period_key(schedule, period),
                UpdateExpression="SET #state = :running, task_id = :task, lease_until = :until, started_at = :started, #ttl = :ttl",
                ConditionExpression=PERIOD_CLAIMABLE,
                ExpressionAttributeNames={"#state": "state", "#ttl": self.table.ttl_attribute},
                ExpressionAttributeValues={
                    ":running": {"S": RUNNING},
                    ":task": {"S": task_id},
                    ":until": encode(now + lease_seconds),
                    ":started": {"S": iso(codec.now())},
                    ":ttl": encode(int(now) + self.ttl_seconds),
                    ":now": encode(now),
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            item = self.client.get_item(TableName=self.table_name, Key=self._period_key(schedule, period), ConsistentRead=True)
            entry = decode_item(item.get("Item", {}))
            remaining = max(0.0, float(entry.get("lease_until") or 0) - time.time())
            return Claim(acquired=False, owner=None, state=entry.get("state", "?"), lease_remaining=remaining, attempts=0)
        return Claim(acquired=True, owner=task_id, state=RUNNING, lease_remaining=lease_seconds, attempts=1)

    def finish_period(self, schedule: str, period: str, task_id: str, state: str, summary: dict[str, Any]) -> bool:
        """Record how a period's run ended (only the run holding the claim can)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._period_key(schedule, period),
                UpdateExpression="SET #state = :state, summary = :summary, finished_at = :finished",
                ConditionExpression=PERIOD_HELD,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":state": {"S": state},
                    ":summary": encode(summary),
                    ":finished": {"S": iso(codec.now())},
                    ":task": {"S": task_id},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def period(self, schedule: str, period: str) -> dict[str, Any] | None:
        """A schedule's run for one period, or None."""
        item = self.client.get_item(TableName=self.table_name, Key=self._period_key(schedule, period), ConsistentRead=True)
        return decode_item(item["Item"]) if "Item" in item else None

"""`python -m infra.local.moto_main`: moto's server, with DynamoDB's item writes atomic as in AWS.

moto serves requests on threads and evaluates a ConditionExpression, then applies the update, with
no lock in between: two workers could both win one conditional write, which DynamoDB never allows
and which dropq's ledger (claims, leases) relies on. One lock around the item operations restores it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

ITEM_OPERATIONS = ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items")
_lock = threading.RLock()


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    return locked


for _name in ITEM_OPERATIONS:
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    main()

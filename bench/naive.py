"""Celery on SQS as the usual tutorials configure it: `broker='sqs://...'` and default transport options.

`celery -A bench.naive worker` with BENCH_SQS_HOST=127.0.0.1:<port> (a local endpoint needs `is_secure` off).
"""

from __future__ import annotations

import os

from celery import Celery

NAIVE_QUEUE = "celery"
NOOP_TASK = "naive.noop"

app = Celery("naive", broker=f"sqs://testing:testing@{os.environ.get('BENCH_SQS_HOST', '127.0.0.1:4566')}")
app.conf.broker_transport_options = {"region": "us-east-1", "is_secure": False}


@app.task(name=NOOP_TASK)
def noop() -> None:
    """Do nothing."""

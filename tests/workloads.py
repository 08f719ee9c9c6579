"""Pipelines the reliability tests run in real workers (DROPQ_PIPELINE_MODULES=tests.workloads).

`sleep` holds its worker for as many seconds as its input file says, then writes what it did: the
long task that SIGTERM, SIGKILL and visibility tests need, and a way to see on which worker it ran.
Workers started with DROPQ_TEST_METADATA_VERSION run the metadata pipeline at that version, as if a developer
had raised it in its `@pipeline` (the reprocessing test).
"""

from __future__ import annotations

import json
import os
import time

from dropq.errors import InputError
from tasks.pipelines import VERSIONS, pipeline
from tasks.pipelines.base import Job

METADATA_VERSION = "DROPQ_TEST_METADATA_VERSION"
if os.environ.get(METADATA_VERSION):
    VERSIONS["metadata"] = int(os.environ[METADATA_VERSION])


@pipeline("sleep")
def sleep(job: Job) -> None:
    """Sleep for the number of seconds the input holds; write slept.json."""
    try:
        seconds = float(job.source.read_text())
    except ValueError as exc:
        raise InputError("a sleep job's input must be a number of seconds") from exc
    started = time.time()
    time.sleep(seconds)
    record = {"seconds": seconds, "pid": os.getpid(), "started": started, "finished": time.time()}
    (job.out_dir / "slept.json").write_text(json.dumps(record))

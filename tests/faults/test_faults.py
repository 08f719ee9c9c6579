"""Fault injection on the real local system: repeated events, killed workers, poison, bad input, a broker outage.

Every scenario accounts for each file it dropped (tests/faults/conftest.py prints the table at the end)
and holds dropq to its promise: nothing lost, nothing completed more than once.
"""

from __future__ import annotations

import io
import json
import random
import signal
import threading
import time
from pathlib import Path

import pytest
from botocore.config import Config
from PIL import Image

from dropq.ledger import ledger_for
from dropq.settings import local_settings
from infra.local.cloud import LocalCloud
from infra.local.server import free_port
from ops.status import queue_counts
from tests.conftest import wait_for
from tests.faults.conftest import MAX_INPUT_BYTES, account
from tests.faults.inject import (
    drop,
    drop_with_repeated_events,
    dropq,
    kill_pool_child,
    kill_worker,
    poison_messages,
    pool_children,
    send_task,
)
from tests.faults.proxy import EXEMPT_APP, Fault, FaultProxy, OutageProxy

pytestmark = pytest.mark.e2e


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40 + seed % 7, 30), (seed % 256, 80, 160)).save(buffer, "PNG")
    return buffer.getvalue()


def _mixed_files(prefix: str, count: int) -> dict[str, bytes]:
    files = {}
    for i in range(count):
        kind = i % 3
        if kind == 0:
            files[f"incoming/{prefix}/{i:03}.txt"] = f"note {i} from {prefix}\n".encode()
        elif kind == 1:
            files[f"incoming/{prefix}/{i:03}.csv"] = f"id,value\n{i},{i * 2}\n".encode()
        else:
            files[f"incoming/{prefix}/{i:03}.png"] = _png(i)
    return files


def test_every_event_delivered_three_times_processes_each_file_once(fault_cloud: LocalCloud) -> None:
    settings = fault_cloud.settings
    files = _mixed_files("triple", 24)
    # and files that fail: a repeated event of a failed file does not run it again (its claim skips it)
    broken = {f"incoming/triple/broken-{i}.png": b"not a PNG at all\n" for i in range(4)}
    drop_with_repeated_events(settings, {**files, **broken}, times=3)

    row = account("events x3", settings, [*files, *broken], timeout=120)
    assert (row.lost, row.duplicated, row.succeeded, row.failed) == (0, 0, len(files), len(broken)), row
    ledger = ledger_for(settings)
    assert all((ledger.get(settings.bucket, key) or {}).get("attempts") == 1 for key in [*files, *broken]), "each run once"
    s3 = settings.client("s3")
    for key in files:
        entry = ledger_for(settings).get(settings.bucket, key)
        assert entry is not None
        outputs = s3.list_objects_v2(Bucket=settings.bucket, Prefix=f"processed/{entry['pipeline']}/{key}/").get("Contents", [])
        assert sorted(o["Key"] for o in outputs) == sorted(entry["outputs"]), "one set of outputs per file"

    # The same keys uploaded again with new content are new versions: processed again, once each.
    again = {key: body + (b"99,198\n" if key.endswith(".csv") else b"edited\n") for key, body in list(files.items())[:2]}
    refs = drop(settings, again)
    row = account("re-uploads", settings, list(again), timeout=60, etags={key: ref.etag for key, ref in refs.items()})
    assert (row.lost, row.duplicated, row.succeeded) == (0, 0, len(again)), row


def test_a_sigterm_lets_running_tasks_finish_and_gives_back_what_the_worker_prefetched(fault_cloud: LocalCloud) -> None:
    # Scale-in and a Fargate Spot interruption stop a worker the same way: SIGTERM, then SIGKILL once the stop timeout
    # (at most 120 s, Spot's two minutes of notice) is over.
    settings = fault_cloud.settings
    refs = drop(settings, {f"work/term/{i}.txt": b"4" for i in range(6)})
    for ref in refs.values():
        send_task(settings, ref, "sleep")
    workers = fault_cloud.pools[0]
    ledger = ledger_for(settings)
    wait_for(lambda: sum((ledger.get(settings.bucket, k) or {}).get("state") == "running" for k in refs) >= 3, 30, "tasks to start")

    stopping = workers.processes[1]
    started = time.monotonic()
    stopping.send_signal(signal.SIGTERM)
    assert stopping.wait(timeout=40) == 0
    # Its running tasks take 4 s; its last long poll (20 s) is cut, not waited out (tasks/broker/polls.py).
    assert time.monotonic() - started < 15, "the worker waited for its running tasks, not for its last poll or the stop timeout"
    workers.scale_to(2)

    row = account("SIGTERM (scale-in, Spot notice), tasks finish", settings, list(refs), timeout=90)
    assert (row.lost, row.duplicated, row.succeeded) == (0, 0, len(refs)), row


def test_tasks_cut_short_by_the_shutdown_deadline_go_back_to_the_queue_at_once(fault_cloud: LocalCloud) -> None:
    settings = fault_cloud.settings
    workers = fault_cloud.pools[0]
    refs = drop(settings, {f"work/cut/{i}.txt": b"20" for i in range(2)})
    for ref in refs.values():
        send_task(settings, ref, "sleep")
    ledger = ledger_for(settings)
    wait_for(lambda: all((ledger.get(settings.bucket, k) or {}).get("state") == "running" for k in refs), 30, "both tasks to start")
    holder = next(w for k in refs if (w := (ledger.get(settings.bucket, k) or {}).get("worker")))
    number = int(holder.split("@")[0].rsplit("-", 1)[1])
    started = {k: (ledger.get(settings.bucket, k) or {}).get("started_at") for k in refs}

    # What tasks/shutdown.py does once the pool's grace is over: SIGTERM, then SIGQUIT (cold shutdown).
    stopping = workers.processes[number]
    stopping.send_signal(signal.SIGTERM)
    time.sleep(1)
    stopping.send_signal(signal.SIGQUIT)
    assert stopping.wait(timeout=30) == 0
    workers.scale_to(2)
    cut = [k for k in refs if (ledger.get(settings.bucket, k) or {}).get("worker") == holder]

    def taken_over() -> bool:
        entries = {k: ledger.get(settings.bucket, k) or {} for k in cut}
        return all(e.get("started_at") != started[k] or e.get("state") == "succeeded" for k, e in entries.items())

    # Given back, a cut task runs again once its lease (24 s, tasks/process.py) is over; left to its visibility timeout
    # it would wait 40 to 60 s.
    wait_for(taken_over, 35, "another worker to take over the cut tasks")
    row = account("SIGTERM, tasks cut short", settings, list(refs), timeout=90)
    assert (row.lost, row.duplicated, row.succeeded) == (0, 0, len(refs)), row


def test_random_sigkills_during_a_few_hundred_tasks_lose_nothing(fault_cloud: LocalCloud) -> None:
    settings = fault_cloud.settings
    files = {f"incoming/kill/{i:03}.txt": f"file {i}\n".encode() for i in range(200)}
    chaos = random.Random(4)
    kills: list[str] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.wait(chaos.uniform(1.0, 2.5)) and len(kills) < 6:
            number = chaos.choice(sorted(fault_cloud.pools[0].processes))
            if chaos.random() < 0.5:
                kill_worker(fault_cloud, number)
                kills.append("worker")
            elif kill_pool_child(fault_cloud, number):
                kills.append("pool process")

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        drop(settings, files)
        wait_for(lambda: len(kills) >= 6, 60, "six SIGKILLs")
    finally:
        stop.set()
        thread.join()
    fault_cloud.pools[0].scale_to(2)

    row = account(f"SIGKILL x{len(kills)}", settings, list(files), timeout=180)
    assert (row.lost, row.duplicated, row.succeeded) == (0, 0, len(files)), row


def test_poison_messages_end_in_the_dead_letter_queue_and_dlq_commands_work(fault_cloud: LocalCloud) -> None:
    settings = fault_cloud.settings
    sqs = settings.client("sqs")
    poison = poison_messages(settings.bucket)
    for body in poison.values():
        for _ in range(2):
            sqs.send_message(QueueUrl=settings.queue_url("default"), MessageBody=body)
    good = {f"incoming/poison/ok-{i}.txt": b"fine\n" for i in range(3)}
    drop(settings, good)
    dlq_url = settings.queue_url("default-dlq")
    expected = 2 * len(poison)
    wait_for(lambda: queue_counts(sqs, dlq_url)["visible"] >= expected, 120, f"{expected} poison messages in the DLQ")

    listed = json.loads(dropq(settings, "dlq", "list", "--json").stdout)["default"]
    assert len(listed) == expected
    assert sum(1 for m in listed if m["problem"]) >= 2 * 4, "messages that are not tasks say why"

    # A real task whose worker kept dying ends there too: redriven with the rest, it is processed,
    # while the poison comes back to the dead-letter queue.
    (ref,) = drop(settings, {"work/redrive/me.txt": b"come back\n"}).values()
    send_task(settings, ref, "metadata", queue_url=dlq_url)
    assert f"{expected + 1} message(s) moved back" in dropq(settings, "dlq", "redrive").stdout
    row = account("poison burst, redrive", settings, [*good, ref.key], timeout=90, in_dlq=expected)
    assert (row.lost, row.duplicated, row.succeeded) == (0, 0, len(good) + 1), row
    wait_for(lambda: queue_counts(sqs, dlq_url)["visible"] == expected, 120, "the poison to come back to the DLQ")

    assert f"{expected} message(s) deleted" in dropq(settings, "dlq", "purge", "--yes").stdout
    assert queue_counts(sqs, dlq_url)["visible"] == 0


# A file's content never shows in a log: not in the workers', not in the producer's.
SECRET_CONTENT = b"unicode is fine; the password is hunter2-7f3a9c\n"


def _bad_inputs() -> dict[str, tuple[bytes, str | None]]:
    """Key -> (content, reason it fails or None if it must succeed)."""
    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, "PNG")
    photo = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 30, 30)).save(photo, "JPEG")
    return {
        "incoming/bad/bomb.png": (bomb.getvalue(), "decompression bomb"),
        "incoming/bad/truncated.jpg": (photo.getvalue()[: len(photo.getvalue()) // 2], "corrupt or truncated image"),
        "incoming/bad/empty.txt": (b"", "the file is empty"),
        "incoming/bad/huge.bin": (b"\0" * (MAX_INPUT_BYTES + 1), "over the 4194304-byte limit"),
        "incoming/bad/latin1.csv": (b"name\n\xe9t\xe9\n", "not UTF-8 text"),
        "incoming/bad/wide.csv": (b",".join([b"c"] * 1_000_000) + b"\n", "more than 10000 columns"),
        "incoming/bad/../escape.txt": (b"out?\n", "'..' path segment"),
        "incoming/bad/" + "n" * 1000 + ".txt": (b"long\n", "the key is too long"),
        # A table whose key leaves room for short output names, not for its parts' (data/part-000000000000.parquet)
        "incoming/bad/" + "t" * 967 + ".csv": (b"a,b\n1,2\n", "the key is too long"),
        # Bytes under a key that S3's console shows as a folder: failed with why, not passed over unseen
        "incoming/bad/folder-with-bytes/": (b"not a folder\n", "the key ends in '/'"),
        "incoming/bad/фото ü 🙂.txt": (SECRET_CONTENT, None),
        "incoming/bad/with spaces/a file.csv": (b"a,b\n1,2\n", None),
    }


def _peak_memory_kib(pids: list[int]) -> int:
    """The largest peak resident size (VmHWM) among processes and their children."""
    peaks = []
    for pid in pids + [child for parent in pids for child in pool_children(parent)]:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]))
    return max(peaks)


def test_hostile_and_broken_input_fails_with_reasons_in_bounded_memory_and_nothing_escapes(fault_cloud: LocalCloud) -> None:
    settings = fault_cloud.settings
    corpus = _bad_inputs()
    drop(settings, {key: content for key, (content, _) in corpus.items()})

    row = account("bad input", settings, list(corpus), timeout=120)
    assert (row.lost, row.duplicated) == (0, 0), row
    ledger = ledger_for(settings)
    for key, (_, reason) in corpus.items():
        entry = ledger.get(settings.bucket, key) or {}
        if reason is None:
            assert entry["state"] == "succeeded", (key, entry.get("reason"))
        else:
            assert entry["state"] == "failed" and reason in entry["reason"], (key, entry.get("reason"))
    assert row.failed == sum(reason is not None for _, reason in corpus.values())

    keys = [
        o["Key"]
        for page in settings.client("s3").get_paginator("list_objects_v2").paginate(Bucket=settings.bucket)
        for o in page.get("Contents", [])
    ]
    assert all(k.startswith(("incoming/", "processed/", "work/")) for k in keys), "an output landed outside the output prefix"
    assert not [k for k in keys if k.startswith("processed/") and "/bad/" in k and "/../" in k]
    assert _peak_memory_kib([p.pid for p in fault_cloud.pools[0].processes.values()]) < 1024 * 1024, "a worker went over 1 GiB"
    logs = b"".join(path.read_bytes() for path in fault_cloud.state_dir.glob("*.log"))
    assert SECRET_CONTENT.strip() not in logs, "a file's content was logged"
    assert settings.environment()["AWS_SECRET_ACCESS_KEY"].encode() + b"@" not in logs, "credentials were logged"


def test_a_broker_outage_of_fifteen_seconds_loses_nothing(tmp_path: Path) -> None:
    server_port = free_port()
    proxy = OutageProxy(target=server_port)
    settings = local_settings(port=proxy.port, state_dir=str(tmp_path))
    proxy.start()
    try:
        with LocalCloud(settings, workers={"default": 2}, server_port=server_port):
            files = {f"incoming/outage/{i:03}.txt": f"file {i}\n".encode() for i in range(60)}
            drop(settings, files)
            time.sleep(1)
            proxy.cut()
            time.sleep(15)
            proxy.restore()
            row = account("broker outage 15 s", settings, list(files), timeout=150)
    finally:
        proxy.stop()
    assert (row.lost, row.duplicated, row.succeeded) == (0, 0, len(files)), row


def test_files_whose_messages_expired_in_their_queue_are_found_and_done_once_by_a_backfill(fault_cloud: LocalCloud) -> None:
    settings = fault_cloud.settings
    ledger, sqs = ledger_for(settings), settings.client("sqs")
    urgent = next(pool for pool in fault_cloud.pools if pool.pool.name == "urgent")
    # Given files that waited in their queue (the urgent pool has no worker here) until SQS dropped their messages,
    # past its retention: moto keeps expired messages, so the queue is purged, which leaves what expiry leaves
    files = {f"incoming/urgent/expired/{i:02}.txt": f"waited too long {i}\n".encode() for i in range(12)}
    drop(settings, files)
    url = settings.queue_url("urgent")
    wait_for(lambda: queue_counts(sqs, url)["visible"] >= len(files), 60, "the files' messages in the urgent queue")
    sqs.purge_queue(QueueUrl=url)
    wait_for(lambda: queue_counts(sqs, url)["visible"] == 0, 30, "the messages gone")
    # The ledger has none of them (the producer writes nothing; a claim would have): `dropq file` finds each in S3
    assert all(ledger.get(settings.bucket, key) is None for key in files)
    shown = json.loads(dropq(settings, "file", next(iter(files)), "--json").stdout)
    assert [v["state"] for v in shown["versions"]] == ["waiting"]

    # When the operator backfills their folder (the queue-age alarm fires long before a message expires)
    done = dropq(settings, "backfill", f"s3://{settings.bucket}/incoming/urgent/expired/")
    assert f"listed {len(files)}, enqueued {len(files)}" in done.stderr + done.stdout, done.stdout + done.stderr
    urgent.scale_to(1, record=False)
    try:
        # Then each file succeeds once
        row = account("messages expired in their queue, backfilled", settings, list(files), timeout=120)
    finally:
        urgent.scale_to(0, record=False)
    assert (row.lost, row.duplicated, row.failed, row.succeeded) == (0, 0, 0, len(files)), row


# What the fault proxy refuses, for twenty seconds, as AWS does under load (tests/faults/proxy.py), while three files
# arrive each second.
LEDGER_WRITES = frozenset({"UpdateItem", "PutItem"})
SQS_CALLS = frozenset({"SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch"})
FAULT_SECONDS = 20
FILES_PER_SECOND = 3


def test_the_faults_aws_throws_at_scale_lose_nothing_and_fail_nothing(tmp_path: Path) -> None:
    # Given the local cloud behind an HTTP proxy that answers as AWS does under load, for FAULT_SECONDS:
    server_port = free_port()
    proxy = FaultProxy(target=server_port).start()
    settings = local_settings(port=proxy.port, state_dir=str(tmp_path))
    test_s3 = settings.client("s3", config=Config(user_agent_appid=EXEMPT_APP.removeprefix("app/")))
    try:
        with LocalCloud(settings, workers={"default": 2}, server_port=server_port):
            proxy.inject(
                # a third of the ledger's writes throttled (the workers': the producer makes none),
                Fault("dynamodb", LEDGER_WRITES, 1 / 3, table=settings.physical_name(settings.topology.ledger_table.name)),
                # a fifth of S3's GETs and PUTs slowed down (503), a fifth of SQS's sends, receives and deletes failed (500)
                Fault("s3", frozenset({"GET", "PUT"}), 1 / 5),
                Fault("sqs", SQS_CALLS, 1 / 5),
            )
            # When files keep arriving through that time
            files = _mixed_files("aws-faults", FAULT_SECONDS * FILES_PER_SECOND)
            started = time.monotonic()
            for i, (key, body) in enumerate(files.items()):
                drop(settings, {key: body}, s3=test_s3)
                time.sleep(max(0.0, started + (i + 1) / FILES_PER_SECOND - time.monotonic()))
            proxy.clear()
            row = account(f"AWS faults for {FAULT_SECONDS} s (throttling, 503, 500)", settings, list(files), timeout=240)
            sqs = settings.client("sqs")
            parked = {
                name: sum(queue_counts(sqs, settings.queue_url(name)).values())
                for name in [q.dlq_name for q in settings.topology.queues] + [settings.topology.producer_failure_queue]
            }
    finally:
        proxy.stop()
    # Then every file succeeded once: none failed for a transient cause, none is waiting for a manual redrive
    assert (row.lost, row.duplicated, row.failed, row.succeeded) == (0, 0, 0, len(files)), (row, row.reasons)
    assert not any(parked.values()), parked
    # and the faults did happen, of each kind
    injected = proxy.injected
    by_kind = {
        kind: sum(n for (service, _), n in injected.items() if service == name)
        for kind, name in (("DynamoDB throttling", "dynamodb"), ("S3 503 Slow Down", "s3"), ("SQS 500", "sqs"))
    }
    row.note = "errors injected: " + ", ".join(f"{kind} {n}" for kind, n in by_kind.items())
    assert by_kind["DynamoDB throttling"] >= 10 and by_kind["S3 503 Slow Down"] >= 5 and by_kind["SQS 500"] >= 10, injected

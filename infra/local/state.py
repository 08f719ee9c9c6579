"""What `dropq up` keeps across restarts: moto holds the local cloud in memory, so its state is saved when the cloud
stops and put back when it starts again (`dropq up --fresh` starts empty).

Saved under `<state dir>/state/`, once the workers and the producer have stopped, and the messages a stopped worker's
cut long poll took are visible again (seconds: infra/local/cloud.py), so nothing changes meanwhile:
- the bucket's objects, with their content type and metadata (`s3/`, and `s3.json` naming them);
- every table's items, as DynamoDB's JSON (`dynamodb/<table>.jsonl`);
- the messages waiting in every queue, with their attributes (`sqs/<queue>.jsonl`).

Put back before the bucket's inbox notification exists, so a restored file is not processed again. A message that
was delayed when the cloud stopped is not saved (SQS hands none out), nor a notification of the inbox in flight: once
the state is back the inbox is backfilled, the files the ledger has never seen and those it has queued or running
enqueued again (a file whose saved message is back too is claimed once, by whichever comes first). A cloud killed without stopping
(SIGKILL) comes back as it was last saved. An object uploaded in parts is put back in parts of the size that gives its
ETag again, which the ledger knows it by.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dropq.objects import parts_etag
from dropq.protocol import decode_task_message
from dropq.settings import Settings

FOLDER = "state"
# Items DynamoDB's BatchWriteItem takes at a time, and messages SendMessageBatch takes.
WRITE_BATCH = 25
SEND_BATCH = 10
# How long a message received to be saved stays hidden: longer than the save takes, so none is read twice.
SAVE_VISIBILITY_SECONDS = 300


@dataclass
class Counts:
    """What was saved or put back."""

    objects: int = 0
    items: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    # Put back: the inbox's files that the ledger had never seen, enqueued once the rest was back.
    backfilled: int = 0
    # Put back: the (key, ETag) of each file a put-back message names (not enqueued again).
    waiting: set[tuple[str, str]] = field(default_factory=set)

    def __str__(self) -> str:
        told = f"{self.objects} objects, {sum(self.items.values())} ledger and result items, {sum(self.messages.values())} waiting messages"
        return told + (f", {self.backfilled} files not yet queued enqueued" if self.backfilled else "")


def folder(settings: Settings) -> Path:
    return Path(settings.state_dir) / FOLDER


def _tables(settings: Settings) -> list[str]:
    topology = settings.topology
    return [settings.physical_name(spec.name) for spec in (topology.ledger_table, topology.results_table)]


def _queues(sqs: Any, settings: Settings) -> dict[str, str]:
    """The deployment's queues by name (its work queues, their dead letters, the inbox events, the invocations)."""
    urls = sqs.list_queues(QueueNamePrefix=settings.prefix).get("QueueUrls", [])
    return {url.rsplit("/", 1)[1]: url for url in urls}


def save(settings: Settings) -> Counts:
    """Write the cloud's objects, items and waiting messages under the state folder, replacing what was there."""
    target, counts = folder(settings), Counts()
    partial = target.with_name(f"{FOLDER}.saving")
    shutil.rmtree(partial, ignore_errors=True)
    s3, dynamodb, sqs = settings.client("s3"), settings.client("dynamodb"), settings.client("sqs")
    (partial / "s3").mkdir(parents=True)
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket):
        for listed in page.get("Contents", []):
            got = s3.get_object(Bucket=settings.bucket, Key=listed["Key"])
            name = f"{len(objects):08d}"
            (partial / "s3" / name).write_bytes(got["Body"].read())
            objects.append(
                {
                    "key": listed["Key"],
                    "file": name,
                    "etag": listed["ETag"].strip('"'),
                    "content_type": got.get("ContentType"),
                    "metadata": got.get("Metadata", {}),
                }
            )
    (partial / "s3.json").write_text(json.dumps(objects))
    counts.objects = len(objects)
    (partial / "dynamodb").mkdir()
    for table in _tables(settings):
        with (partial / "dynamodb" / f"{table}.jsonl").open("w") as out:
            count = 0
            for page in dynamodb.get_paginator("scan").paginate(TableName=table):
                for item in page.get("Items", []):
                    out.write(json.dumps(item) + "\n")
                    count += 1
            counts.items[table] = count
    (partial / "sqs").mkdir()
    for name, url in _queues(sqs, settings).items():
        with (partial / "sqs" / f"{name}.jsonl").open("w") as out:
            count = 0
            # No long poll: the queues wait 20 s on an empty receive unless told otherwise.
            while messages := sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=SAVE_VISIBILITY_SECONDS,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            ).get("Messages", []):
                for message in messages:
                    out.write(json.dumps({"body": message["Body"], "attributes": message.get("MessageAttributes", {})}) + "\n")
                    count += 1
            counts.messages[name] = count
    # The state before is set aside, not deleted, until the new one is in its place.
    previous = target.with_name(f"{FOLDER}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    partial.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
    return counts


# The part sizes an object uploaded in parts most likely had: boto3's and the AWS CLI's 8 MiB, S3's 5 MiB minimum, and
# larger ones tools choose for large files.
PART_SIZES = tuple(mib * 1024 * 1024 for mib in (8, 5, 16, 10, 32, 64, 100, 128))


def _parts(body: bytes, part_size: int) -> list[bytes]:
    return [body[at : at + part_size] for at in range(0, len(body), part_size)]


def _put_back(s3: Any, bucket: str, key: str, body: bytes, etag: str, extra: dict[str, Any]) -> None:
    """Put an object back with the ETag it had (the ledger knows its versions by it): in one piece, or in the parts that
    make that ETag when it was uploaded in parts (of a size PART_SIZES has; else in one piece, a new ETag)."""
    size = next((p for p in PART_SIZES if "-" in etag and parts_etag(_parts(body, p)) == etag), None)
    if size is None:
        s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        return
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    parts = []
    for number, piece in enumerate(_parts(body, size), start=1):
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=piece)
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})


def _file_named(body: str) -> tuple[str, str] | None:
    """The (key, ETag) a `dropq.process` message names, or None (another task, or not a task message)."""
    try:
        kwargs = decode_task_message(body)["body"]["kwargs"]
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    key, etag = kwargs.get("key"), kwargs.get("etag")
    return (key, etag) if isinstance(key, str) and isinstance(etag, str) else None


def saved(settings: Settings) -> bool:
    return (folder(settings) / "s3.json").exists()


def restore(settings: Settings) -> Counts:
    """Put the saved objects, items and messages back into a freshly provisioned cloud (its bucket's notification off)."""
    source, counts = folder(settings), Counts()
    s3, dynamodb, sqs = settings.client("s3"), settings.client("dynamodb"), settings.client("sqs")
    for entry in json.loads((source / "s3.json").read_text()):
        extra = {"ContentType": entry["content_type"]} if entry.get("content_type") else {}
        body = (source / "s3" / entry["file"]).read_bytes()
        _put_back(s3, settings.bucket, entry["key"], body, entry.get("etag", ""), {"Metadata": entry.get("metadata") or {}, **extra})
        counts.objects += 1
    for table in _tables(settings):
        path = source / "dynamodb" / f"{table}.jsonl"
        items = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        for start in range(0, len(items), WRITE_BATCH):
            pending = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + WRITE_BATCH]]}
            while pending:
                pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        counts.items[table] = len(items)
    queues = _queues(sqs, settings)
    for path in sorted((source / "sqs").glob("*.jsonl")):
        name = path.stem
        if name not in queues:
            continue  # a queue the topology no longer has
        messages = [json.loads(line) for line in path.read_text().splitlines()]
        counts.waiting |= {named for m in messages if (named := _file_named(m["body"]))}
        for start in range(0, len(messages), SEND_BATCH):
            entries = [
                {"Id": str(i), "MessageBody": m["body"], **({"MessageAttributes": m["attributes"]} if m["attributes"] else {})}
                for i, m in enumerate(messages[start : start + SEND_BATCH])
            ]
            failed = sqs.send_message_batch(QueueUrl=queues[name], Entries=entries).get("Failed", [])
            if failed:
                raise RuntimeError(f"could not put back messages of {name}: {failed}")
        counts.messages[name] = len(messages)
    return counts

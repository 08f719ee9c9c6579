"""How the ledger stores values: boto3's TypeSerializer and TypeDeserializer (floats go in as Decimals, which is all
boto3 takes, and numbers come back as int or float); its one time format; the keys of a file's entry."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from dropq.objects import ObjectRef
from dropq.topology import output_folder

SERIALIZER, DESERIALIZER = TypeSerializer(), TypeDeserializer()


def now() -> datetime:
    """The ledger's clock (tests move it back to write entries of hours or days ago)."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """The ledger's one time format: ISO 8601 UTC to the millisecond, with a Z ("2026-12-01T20:15:03.120Z")."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def day(moment: datetime) -> str:
    """The day an index's daily partition key names."""
    return moment.strftime("%Y-%m-%d")


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, (list, tuple)):
        return [_decimals(v) for v in value]
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    return value


def _numbers(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    return value


def encode(value: Any) -> dict[str, Any]:
    """A value as a DynamoDB attribute; TypeError for what the ledger does not store."""
    try:
        return SERIALIZER.serialize(_decimals(value))
    except TypeError as exc:
        raise TypeError(f"cannot store {type(value).__name__} in the ledger") from exc


def decode(attr: dict[str, Any]) -> Any:
    """A DynamoDB attribute as a plain Python value."""
    return _numbers(DESERIALIZER.deserialize(attr))


def decode_item(item: dict[str, Any], output_prefix: str | None = None) -> dict[str, Any]:
    """A DynamoDB item as plain Python values; a file entry with its `bucket` and `key`, which its partition key holds,
    and its `outputs` as whole keys, which its `output_names` hold below its output folder (given the topology's
    `output_prefix`): neither is stored again, since every byte is kept as long as the entry."""
    decoded = {name: decode(attr) for name, attr in item.items()}
    pk = decoded.get("pk")
    if isinstance(pk, str) and pk.startswith(FILE_PK_PREFIX):
        bucket, _, key = pk.removeprefix(FILE_PK_PREFIX).partition("/")
        decoded.setdefault("bucket", bucket)
        decoded.setdefault("key", key)
        if OUTPUT_NAMES in decoded and output_prefix is not None:
            folder = output_folder(output_prefix, str(decoded.get("pipeline")), key)
            decoded["outputs"] = [folder + name for name in decoded.pop(OUTPUT_NAMES)]
    return decoded


# A file entry's outputs, by their names below its output folder (`output_folder`).
OUTPUT_NAMES = "output_names"


def output_names(output_prefix: str, key: str, outputs: list[str]) -> list[str] | None:
    """The outputs' names below the folder of the input `key` (all in one pipeline's folder), or None if one is not
    below it (they are then stored whole)."""
    pipelines = set()
    names = []
    for output in outputs:
        pipeline, slash, rest = output.removeprefix(output_prefix).partition("/")
        if not output.startswith(output_prefix) or not slash or not rest.startswith(f"{key}/"):
            return None
        pipelines.add(pipeline)
        names.append(rest.removeprefix(f"{key}/"))
    return names if len(pipelines) <= 1 else None


FILE_PK_PREFIX = "file#s3://"


def file_pk(bucket: str, key: str) -> str:
    """The partition key of an object's ledger entries (a bucket's name has no `/`: the key is what follows the first)."""
    return f"{FILE_PK_PREFIX}{bucket}/{key}"


def entry_ref(entry: dict[str, Any]) -> ObjectRef:
    """The object version a file entry is about."""
    return ObjectRef(bucket=entry["bucket"], key=entry["key"], etag=entry["sk"], size=int(entry.get("size") or 0))

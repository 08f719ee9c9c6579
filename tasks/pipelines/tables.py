"""Tables (CSV, JSON Lines): a Parquet file and a JSON column profile."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from dropq.errors import InputError
from tasks.pipelines import pipeline
from tasks.pipelines.base import Job

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
SNIFF_BYTES = 64 * 1024
# Wider tables are refused before parsing: pyarrow's memory grows with the column count, not the file size.
MAX_COLUMNS = 10_000
# An empty CSV field is a missing value, in string columns too.
CSV_CONVERSION = pacsv.ConvertOptions(strings_can_be_null=True)


def _check_text(job: Job, kind: str) -> None:
    """Refuse binary files early, with a reason, before the parser produces a confusing one."""
    with job.source.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if b"\x00" in head:
        raise InputError(f"not a {kind} file: it contains binary data (NUL bytes), not text")


def _check_width(job: Job) -> None:
    """Refuse a CSV whose header names more than MAX_COLUMNS columns (counted without parsing it)."""
    columns = 1
    with job.source.open("rb") as handle:
        while chunk := handle.read(SNIFF_BYTES):
            line = chunk.split(b"\n", 1)[0]
            columns += line.count(b",")
            if columns > MAX_COLUMNS:
                raise InputError(f"not a table dropq converts: the CSV header has more than {MAX_COLUMNS} columns")
            if len(line) < len(chunk):
                return


def read_table(job: Job) -> tuple[pa.Table, str]:
    """Parse the input as CSV or JSON Lines (by its extension)."""
    json_lines = job.ref.key.lower().endswith(JSON_LINES_SUFFIXES)
    kind = "JSON Lines" if json_lines else "CSV"
    _check_text(job, kind)
    if not json_lines:
        _check_width(job)
    try:
        table = pajson.read_json(job.source) if json_lines else pacsv.read_csv(job.source, convert_options=CSV_CONVERSION)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise InputError(f"not a valid {kind} file: {detail}") from exc
    if table.num_columns == 0:
        raise InputError(f"not a valid {kind} file: no columns found")
    for name, column in zip(table.column_names, table.columns, strict=True):
        # pyarrow infers a binary column where a field is not valid UTF-8 rather than failing.
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            raise InputError(f"not a valid {kind} file: column {name!r} holds bytes that are not UTF-8 text")
    return table, kind


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and value != value:
        return None
    return value


def profile_column(name: str, column: pa.ChunkedArray) -> dict[str, Any]:
    """Type, null count and (for orderable types) min and max of one column."""
    entry: dict[str, Any] = {"name": name, "type": str(column.type), "null_count": column.null_count, "min": None, "max": None}
    orderable = not (pa.types.is_nested(column.type) or pa.types.is_null(column.type) or pa.types.is_dictionary(column.type))
    if orderable and len(column) > column.null_count:
        extremes = pc.min_max(column)
        entry["min"] = _jsonable(extremes["min"].as_py())
        entry["max"] = _jsonable(extremes["max"].as_py())
    return entry


@pipeline("tables")
def convert(job: Job) -> None:
    """Write data.parquet and profile.json."""
    table, kind = read_table(job)
    pq.write_table(table, job.out_dir / "data.parquet", compression="zstd")
    profile = {
        "source": job.source_summary(),
        "format": kind,
        "row_count": table.num_rows,
        "column_count": table.num_columns,
        "columns": [profile_column(name, column) for name, column in zip(table.column_names, table.columns, strict=False)],
        "outputs": [job.output_key("data.parquet")],
    }
    (job.out_dir / "profile.json").write_text(json.dumps(profile, indent=2, ensure_ascii=False))

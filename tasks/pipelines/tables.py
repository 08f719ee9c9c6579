"""Tables (CSV, JSON Lines): a Parquet dataset and a JSON column profile; large files in chunks, side by side."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import itertools
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from dropq.errors import InputError
from dropq.objects import ObjectRef
from dropq.settings import load_settings
from tasks.pipelines import pipeline
from tasks.pipelines.base import Job, ReadRange, Split

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
SNIFF_BYTES = 64 * 1024
# A chunked table's column types are inferred from this much of its start, as pyarrow infers from its first block.
SCHEMA_SAMPLE_BYTES = 1024 * 1024
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


def _kind(ref: ObjectRef) -> tuple[bool, str]:
    json_lines = ref.key.lower().endswith(JSON_LINES_SUFFIXES)
    return json_lines, "JSON Lines" if json_lines else "CSV"


# An ISO time that names its UTC offset ends so: Z, +02:00, -0500.
UTC_OFFSET = r"(Z|[+-]\d{2}:?\d{2})$"


def _rewound(source: Any) -> Any:
    if hasattr(source, "seek"):
        source.seek(0)
    return source


def _json_times(table: pa.Table, reparse: Any) -> pa.Table:
    """JSON Lines' times as the CSV reader reads them: pyarrow's JSON reader turns an ISO time with a UTC offset into
    the UTC time without saying so (a naive timestamp). Read again as text, a column whose every time names an offset
    becomes UTC (a timestamp with its zone), one that mixes times with and without an offset stays text, and one of
    times without offsets stays as it was (local times of no stated zone)."""
    naive = [f.name for f in table.schema if pa.types.is_timestamp(f.type) and f.type.tz is None]
    if not naive:
        return table
    texts = reparse(pa.schema([pa.field(f.name, pa.string()) if f.name in naive else f for f in table.schema]))
    for name in naive:
        text = texts.column(name)
        offsets = pc.sum(pc.match_substring_regex(text, UTC_OFFSET)).as_py() or 0
        if offsets == 0:
            continue
        unit = table.schema.field(name).type.unit
        column = pc.cast(text, pa.timestamp(unit, tz="UTC")) if offsets == len(text) - text.null_count else text
        table = table.set_column(table.schema.get_field_index(name), pa.field(name, column.type), column)
    return table


def _parse(source: Any, json_lines: bool, schema: pa.Schema | None = None, header: bool = True) -> pa.Table:
    """Parse CSV or JSON Lines; with a `schema` (a chunk), its columns and types are not inferred again."""
    if json_lines:
        if schema is not None:
            return pajson.read_json(source, parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"))
        table = pajson.read_json(source)
        return _json_times(table, lambda explicit: _parse(_rewound(source), json_lines, explicit))
    if schema is None:
        return pacsv.read_csv(source, convert_options=CSV_CONVERSION)
    read = pacsv.ReadOptions(column_names=schema.names, skip_rows=1 if header else 0)
    convert = pacsv.ConvertOptions(strings_can_be_null=True, column_types=schema)
    return pacsv.read_csv(source, read_options=read, convert_options=convert)


def read_table(job: Job, schema: pa.Schema | None = None, header: bool = True, where: str = "") -> tuple[pa.Table, str]:
    """Parse the input (or a chunk of it) as CSV or JSON Lines, by its extension."""
    json_lines, kind = _kind(job.ref)
    _check_text(job, kind)
    if not json_lines and header:
        _check_width(job)
    try:
        table = _parse(job.source, json_lines, schema, header)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise InputError(f"not a valid {kind} file{where}: {detail}") from exc
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


def profile_column(name: str, column: pa.ChunkedArray, written: pa.DataType | None = None) -> dict[str, Any]:
    """Type (as the Parquet file holds it, when `written` says), null count and (for orderable types) min and max of
    one column."""
    kind = str(written if written is not None else column.type)
    entry: dict[str, Any] = {"name": name, "type": kind, "null_count": column.null_count, "min": None, "max": None}
    orderable = not (pa.types.is_nested(column.type) or pa.types.is_null(column.type) or pa.types.is_dictionary(column.type))
    if orderable and len(column) > column.null_count:
        extremes = pc.min_max(column)
        entry["min"] = _jsonable(extremes["min"].as_py())
        entry["max"] = _jsonable(extremes["max"].as_py())
    return entry


def _line_end(read: ReadRange, size: int, offset: int) -> int:
    """The offset just after the first newline at or after `offset` (or the end of the file)."""
    while offset < size:
        window = read(offset, min(size, offset + SNIFF_BYTES))
        newline = window.find(b"\n")
        if newline >= 0:
            return offset + newline + 1
        offset += len(window)
    return size


def infer_schema(ref: ObjectRef, read: ReadRange) -> pa.Schema:
    """The columns and types of a table, from its first SCHEMA_SAMPLE_BYTES (pyarrow infers them from its first block too)."""
    json_lines, kind = _kind(ref)
    sample = read(0, min(ref.size, SCHEMA_SAMPLE_BYTES))
    if b"\x00" in sample[:SNIFF_BYTES]:
        raise InputError(f"not a {kind} file: it contains binary data (NUL bytes), not text")
    if not json_lines and sample.split(b"\n", 1)[0].count(b",") >= MAX_COLUMNS:
        raise InputError(f"not a table dropq converts: the CSV header has more than {MAX_COLUMNS} columns")
    try:
        table = _parse(io.BytesIO(sample[: sample.rfind(b"\n") + 1] or sample), json_lines)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise InputError(f"not a valid {kind} file: {str(exc).strip().splitlines()[0]}") from exc
    # A column empty throughout the sample may hold text further on.
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema])


def plan(ref: ObjectRef, read: ReadRange) -> list[dict[str, Any]]:
    """Chunks of about `chunk_bytes` (DROPQ_TABLE_CHUNK_BYTES), cut at line ends; one part for a smaller file."""
    chunk_bytes = load_settings().table_chunk_bytes
    if ref.size <= chunk_bytes:
        return [{"range": [0, ref.size]}]
    schema = base64.b64encode(infer_schema(ref, read).serialize().to_pybytes()).decode("ascii")
    cuts = [0]
    while cuts[-1] + chunk_bytes < ref.size:
        cut = _line_end(read, ref.size, cuts[-1] + chunk_bytes)
        if cut >= ref.size:
            break
        cuts.append(cut)
    cuts.append(ref.size)
    return [{"range": [start, end], "schema": schema} for start, end in itertools.pairwise(cuts)]


def part_name(start: int) -> str:
    """The output name of the chunk that starts at byte `start`: always as long (offsets are 12 digits)."""
    return f"data/part-{start:012d}.parquet"


def convert_chunk(job: Job, args: dict[str, Any]) -> dict[str, Any]:
    """Write one chunk as data/part-<n>.parquet; return its rows and column profile."""
    start, end = args["range"]
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(args["schema"]))) if "schema" in args else None
    where = f" (in bytes {start}..{end})" if schema is not None else ""
    table, kind = read_table(job, schema=schema, header=start == 0, where=where)
    name = part_name(start)
    (job.out_dir / "data").mkdir(exist_ok=True)
    pq.write_table(table, job.out_dir / name, compression="zstd")
    # The types the Parquet file holds, which is what its readers see: Parquet has no seconds (timestamp[s] is written
    # as [ms]) and names a list's items `element`.
    written = pq.read_schema(job.out_dir / name)
    # By position: a CSV header may name two columns alike.
    columns = [profile_column(n, c, written.field(i).type) for i, (n, c) in enumerate(zip(table.column_names, table.columns, strict=True))]
    return {"key": job.output_key(name), "format": kind, "rows": table.num_rows, "columns": columns}


def _merge_column(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged = {**parts[0], "null_count": sum(p["null_count"] for p in parts)}
    for bound, pick in (("min", min), ("max", max)):
        values = [p[bound] for p in parts if p[bound] is not None]
        merged[bound] = pick(values) if values else None
    return merged


def profile(job: Job, chunks: list[dict[str, Any]]) -> None:
    """Write profile.json for the whole table, from its chunks' profiles."""
    names = [c["name"] for c in chunks[0]["columns"]]
    record = {
        "source": job.source_summary(),
        "format": chunks[0]["format"],
        "row_count": sum(c["rows"] for c in chunks),
        "column_count": len(names),
        "columns": [_merge_column([c["columns"][i] for c in chunks]) for i in range(len(names))],
        "outputs": [c["key"] for c in chunks],
    }
    (job.out_dir / "profile.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))


# A Parquet dataset (data/part-*.parquet) and a profile.json; a large file is converted in chunks side by side
# (a chord), and the profile is the chord's callback.
pipeline("tables")(Split(plan=plan, part=convert_chunk, combine=profile))

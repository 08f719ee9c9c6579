"""The built-in pipelines on real files made here, without S3."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from dropq.errors import InputError
from dropq.objects import ObjectRef
from tasks.pipelines import PIPELINES, Job


def make_job(tmp_path: Path, key: str, data: bytes) -> Job:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "input"
    source.write_bytes(data)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    ref = ObjectRef(bucket="b", key=key, etag="e", size=len(data))
    return Job(ref=ref, source=source, sha256=hashlib.sha256(data).hexdigest(), out_dir=out_dir, output_folder=f"processed/x/{key}/")


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    image = Image.new("RGB", (width, height), (10, 120, 200))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def test_thumbnails_are_auto_oriented_in_two_sizes_with_a_manifest(tmp_path: Path) -> None:
    # Given a landscape JPEG whose EXIF says "rotate 90° to display" (orientation 6)
    data = jpeg(1600, 800, orientation=6)
    job = make_job(tmp_path, "incoming/cam.jpg", data)

    PIPELINES["images"](job)

    manifest = json.loads((job.out_dir / "manifest.json").read_text())
    assert (manifest["width"], manifest["height"], manifest["format"], manifest["exif_orientation"]) == (800, 1600, "JPEG", 6)
    assert manifest["source"]["sha256"] == hashlib.sha256(data).hexdigest()
    sizes = {}
    for thumb in manifest["thumbnails"]:
        name = thumb["key"].rsplit("/", 1)[1]
        with Image.open(job.out_dir / name) as image:
            sizes[name] = image.size
        assert thumb["key"].startswith("processed/x/incoming/cam.jpg/")
        assert (thumb["width"], thumb["height"]) == sizes[name]
    assert sizes == {"thumb-128.jpg": (64, 128), "thumb-512.jpg": (256, 512)}


def test_transparent_png_keeps_its_alpha_and_webp_is_accepted(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (300, 200), (0, 0, 0, 0)).save(buffer, "PNG")
    (tmp_path / "png").mkdir()
    png_job = make_job(tmp_path / "png", "incoming/a.png", buffer.getvalue())
    PIPELINES["images"](png_job)
    with Image.open(png_job.out_dir / "thumb-128.png") as thumb:
        assert thumb.mode == "RGBA" and thumb.size == (128, 85)

    buffer = io.BytesIO()
    Image.new("RGB", (100, 50), "green").save(buffer, "WEBP")
    (tmp_path / "webp").mkdir()
    webp_job = make_job(tmp_path / "webp", "incoming/a.webp", buffer.getvalue())
    PIPELINES["images"](webp_job)
    assert json.loads((webp_job.out_dir / "manifest.json").read_text())["format"] == "WEBP"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (jpeg(640, 480)[:2000], "corrupt or truncated image: image file is truncated"),
        (b"this is not an image at all", "not an image Pillow can read"),
    ],
)
def test_broken_images_fail_with_a_reason_and_no_outputs(tmp_path: Path, data: bytes, reason: str) -> None:
    job = make_job(tmp_path, "incoming/broken.jpg", data)
    with pytest.raises(InputError, match=reason):
        PIPELINES["images"](job)
    assert list(job.out_dir.iterdir()) == []


def test_other_image_formats_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buffer, "GIF")
    with pytest.raises(InputError, match="GIF images are not supported; expected JPEG, PNG or WebP"):
        PIPELINES["images"](make_job(tmp_path, "incoming/anim.png", buffer.getvalue()))


def test_decompression_bombs_are_refused(tmp_path: Path) -> None:
    # 9000 x 9000 one-bit pixels compress to a few kilobytes but would decode to 81 megapixels
    buffer = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buffer, "PNG")
    assert len(buffer.getvalue()) < 100_000
    with pytest.raises(InputError, match="decompression bomb"):
        PIPELINES["images"](make_job(tmp_path, "incoming/bomb.png", buffer.getvalue()))


def test_csv_becomes_parquet_and_a_column_profile(tmp_path: Path) -> None:
    job = make_job(tmp_path, "incoming/sales.csv", b"id,city,amount\n1,Oslo,2.5\n2,,10\n3,Lima,\n")

    PIPELINES["tables"](job)

    table = pq.read_table(job.out_dir / "data")
    assert table.num_rows == 3 and table.column_names == ["id", "city", "amount"]
    assert table.column("city").to_pylist() == ["Oslo", None, "Lima"]
    profile = json.loads((job.out_dir / "profile.json").read_text())
    assert profile["row_count"] == 3
    columns = {c["name"]: c for c in profile["columns"]}
    assert columns["id"] == {"name": "id", "type": "int64", "null_count": 0, "min": 1, "max": 3}
    assert (columns["amount"]["type"], columns["amount"]["null_count"], columns["amount"]["max"]) == ("double", 1, 10.0)
    assert (columns["city"]["min"], columns["city"]["max"], columns["city"]["null_count"]) == ("Lima", "Oslo", 1)


def test_json_lines_become_parquet(tmp_path: Path) -> None:
    job = make_job(tmp_path, "incoming/events.jsonl", b'{"user": "a", "n": 1}\n{"user": "b", "n": null}\n')
    PIPELINES["tables"](job)
    assert pq.read_table(job.out_dir / "data").to_pylist() == [{"user": "a", "n": 1}, {"user": "b", "n": None}]
    assert json.loads((job.out_dir / "profile.json").read_text())["format"] == "JSON Lines"


TIMES = {
    "Z": (["2024-01-01T10:00:00Z", "2024-01-02T11:30:00Z"], "timestamp[ms, tz=UTC]", "2024-01-01T10:00:00+00:00"),
    "+02:00": (["2024-01-01T10:00:00+02:00", "2024-01-02T11:30:00+02:00"], "timestamp[ms, tz=UTC]", "2024-01-01T08:00:00+00:00"),
    "naive": (["2024-01-01T10:00:00", "2024-01-02T11:30:00"], "timestamp[ms]", "2024-01-01T10:00:00"),
    "mixed": (["2024-01-01T10:00:00Z", "2024-01-02T11:30:00"], "string", "2024-01-01T10:00:00Z"),
}


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
@pytest.mark.parametrize("zone", list(TIMES))
def test_times_keep_their_utc_offset_and_the_profile_says_what_the_parquet_holds(tmp_path: Path, kind: str, zone: str) -> None:
    times, written, first = TIMES[zone]
    if kind == "csv":
        data = ("at,tags\n" + "".join(f"{t},x\n" for t in times)).encode()
    else:
        data = "".join(json.dumps({"at": t, "tags": ["a", "b"]}) + "\n" for t in times).encode()
    job = make_job(tmp_path, f"incoming/times.{kind}", data)

    PIPELINES["tables"](job)

    schema = pq.read_schema(next((job.out_dir / "data").iterdir()))
    profile = {c["name"]: c for c in json.loads((job.out_dir / "profile.json").read_text())["columns"]}
    assert str(schema.field("at").type) == written and profile["at"]["type"] == written, "the profile is the Parquet's schema"
    assert profile["at"]["min"] == first, "an instant with an offset is kept as that instant, in UTC"
    if kind == "jsonl":
        assert profile["tags"]["type"] == str(schema.field("tags").type) == "list<element: string>"


def test_a_chunked_json_lines_file_keeps_its_times_utc_in_every_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROPQ_TABLE_CHUNK_BYTES", str(64 * 1024))
    data = "".join(json.dumps({"i": i, "at": f"2024-01-01T{i % 24:02d}:00:00+02:00"}) + "\n" for i in range(4000)).encode()
    job = make_job(tmp_path, "incoming/many.jsonl", data)

    PIPELINES["tables"](job)

    table = pq.read_table(job.out_dir / "data")
    assert len(list((job.out_dir / "data").iterdir())) > 1 and str(table.schema.field("at").type) == "timestamp[ms, tz=UTC]"
    assert table.column("at")[0].as_py().isoformat() == "2023-12-31T22:00:00+00:00"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"a,b,c\n1,2,3\n4,5\n", "not a valid CSV file: CSV parse error: Expected 3 columns, got 2"),
        (b"name\n\xff\xfe\xfa\n", "not a valid CSV file: column 'name' holds bytes that are not UTF-8 text"),
        (b"PK\x03\x04\x00\x00binary zip", r"not a CSV file: it contains binary data \(NUL bytes\)"),
        (b",".join([b"c"] * 1_000_000) + b"\n" + b",".join([b"1"] * 1_000_000), "the CSV header has more than 10000 columns"),
    ],
    ids=["ragged", "not-utf8", "binary", "a-million-columns"],
)
def test_a_csv_that_is_not_csv_fails_with_a_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    job = make_job(tmp_path, "incoming/bad.csv", data)
    with pytest.raises(InputError, match=reason):
        PIPELINES["tables"](job)
    assert list(job.out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("key", "data", "content_type"),
    [
        ("incoming/doc", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "application/pdf"),
        ("incoming/notes.txt", "plain words, ünïcode".encode(), "text/plain"),
        ("incoming/blob", bytes(range(256)) * 4, "application/octet-stream"),
    ],
)
def test_metadata_detects_content_type_and_hashes(tmp_path: Path, key: str, data: bytes, content_type: str) -> None:
    job = make_job(tmp_path, key, data)
    PIPELINES["metadata"](job)
    record = json.loads((job.out_dir / "metadata.json").read_text())
    assert record["content_type"] == content_type
    assert record["source"] == {"bucket": "b", "key": key, "etag": "e", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_a_table_over_the_chunk_size_is_converted_in_line_aligned_chunks_to_the_same_rows_and_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"id,city,amount\n" + "".join(f"{i},c{i % 7},{i / 4}\n" for i in range(20_000)).encode()
    whole = make_job(tmp_path / "whole", "incoming/t.csv", data)
    PIPELINES["tables"](whole)

    monkeypatch.setenv("DROPQ_TABLE_CHUNK_BYTES", str(64 * 1024))
    chunked = make_job(tmp_path / "chunked", "incoming/t.csv", data)
    PIPELINES["tables"](chunked)

    parts = sorted((chunked.out_dir / "data").iterdir())
    assert len(parts) == -(-len(data) // (64 * 1024)) and len(list((whole.out_dir / "data").iterdir())) == 1
    assert pq.read_table(chunked.out_dir / "data").equals(pq.read_table(whole.out_dir / "data"))
    chunked_profile = json.loads((chunked.out_dir / "profile.json").read_text())
    whole_profile = json.loads((whole.out_dir / "profile.json").read_text())
    assert chunked_profile["columns"] == whole_profile["columns"] and chunked_profile["row_count"] == 20_000
    assert len(chunked_profile["outputs"]) == len(parts)


def test_an_image_rendered_in_parts_has_the_outputs_of_one_rendered_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.pipelines.images import plan

    data = jpeg(1600, 800, orientation=6)
    ref = ObjectRef(bucket="b", key="incoming/cam.jpg", etag="e", size=len(data))
    assert len(plan(ref, lambda start, end: data[start:end])) == 1, "a small image: one task renders both sizes"
    whole = make_job(tmp_path / "whole", "incoming/cam.jpg", data)
    PIPELINES["images"](whole)

    monkeypatch.setenv("DROPQ_IMAGE_SPLIT_BYTES", "0")
    assert len(plan(ref, lambda start, end: data[start:end])) == 2, "from the threshold on: one part per size"
    parts = make_job(tmp_path / "parts", "incoming/cam.jpg", data)
    PIPELINES["images"](parts)

    names = sorted(p.name for p in whole.out_dir.iterdir())
    assert names == sorted(p.name for p in parts.out_dir.iterdir()) == ["manifest.json", "thumb-128.jpg", "thumb-512.jpg"]
    assert (whole.out_dir / "manifest.json").read_text() == (parts.out_dir / "manifest.json").read_text()


def test_every_module_of_a_pipelines_folder_is_registered_without_being_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.pipelines import MODULES, VERSIONS, register_modules

    assert set(MODULES) == {"tasks.pipelines.images", "tasks.pipelines.metadata", "tasks.pipelines.tables"}
    folder = tmp_path / "mypipelines"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "wordcount.py").write_text(
        "from tasks.pipelines import pipeline\n\n\n"
        "@pipeline('wordcount-test', version=2)\n"
        "def wordcount(job):\n"
        "    (job.out_dir / 'count.txt').write_text(str(len(job.source.read_text().split())))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(PIPELINES, "wordcount-test", raising=False)
    try:
        assert register_modules("mypipelines", [str(folder)]) == ["mypipelines.wordcount"]
        job = make_job(tmp_path / "job", "incoming/words.txt", b"three small words")
        PIPELINES["wordcount-test"](job)
        assert (job.out_dir / "count.txt").read_text() == "3" and VERSIONS["wordcount-test"] == 2
    finally:
        PIPELINES.pop("wordcount-test", None)
        VERSIONS.pop("wordcount-test", None)


def test_a_csv_that_names_two_columns_alike_is_profiled_column_by_column(tmp_path: Path) -> None:
    job = make_job(tmp_path, "incoming/twice.csv", b"a,a,b\n1,x,2\n3,y,4\n")
    PIPELINES["tables"](job)
    profile = json.loads((job.out_dir / "profile.json").read_text())
    assert [(c["name"], c["type"]) for c in profile["columns"]] == [("a", "int64"), ("a", "string"), ("b", "int64")]

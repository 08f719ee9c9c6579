"""The ledger's codec (dropq/ledger/codec.py): values as DynamoDB stores them, through boto3's own serializers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dropq.ledger.codec import decode, decode_item, encode, entry_ref, file_pk, iso


def test_values_the_ledger_writes_come_back_as_they_were_ints_as_ints_and_floats_as_floats() -> None:
    lease_until = 1764662400.125
    entry = {
        "attempts": 3,
        "lease_until": lease_until,
        "duration_ms": 0,
        "reason": None,
        "split": False,
        "outputs": ["processed/a.png", "processed/b.png"],
        "history": [{"attempt": 1, "finished_at": None, "worker": "w1", "took": 1.5}],
        "webhook": {"status": 200, "attempts": 1},
    }

    stored = {name: encode(value) for name, value in entry.items()}

    assert stored["attempts"] == {"N": "3"} and stored["lease_until"] == {"N": repr(lease_until)}
    assert stored["reason"] == {"NULL": True} and stored["split"] == {"BOOL": False}
    assert stored["outputs"] == {"L": [{"S": "processed/a.png"}, {"S": "processed/b.png"}]}
    back = decode_item(stored)
    assert back == entry
    assert type(back["attempts"]) is int and type(back["lease_until"]) is float and type(back["history"][0]["took"]) is float


def test_a_number_with_a_fraction_or_an_exponent_is_read_as_written() -> None:
    assert decode({"N": "5.0"}) == 5.0 and type(decode({"N": "5.0"})) is float
    assert decode({"N": "12"}) == 12 and type(decode({"N": "12"})) is int
    assert decode({"N": "1e-3"}) == 0.001


def test_what_the_ledger_does_not_store_is_refused_naming_its_type() -> None:
    with pytest.raises(TypeError, match="cannot store datetime in the ledger"):
        encode(datetime.now(UTC))


def test_one_time_format_and_the_keys_of_an_entry() -> None:
    assert iso(datetime(2026, 12, 1, 20, 15, 3, 120456, tzinfo=UTC)) == "2026-12-01T20:15:03.120Z"
    assert file_pk("b", "incoming/x.jpg") == "file#s3://b/incoming/x.jpg"
    ref = entry_ref({"bucket": "b", "key": "incoming/x.jpg", "sk": "etag1", "size": 7})
    assert (ref.bucket, ref.key, ref.etag, ref.size) == ("b", "incoming/x.jpg", "etag1", 7)


@pytest.mark.parametrize("key", ["incoming/a.jpg", "incoming/with/slashes/and spaces/ünï.png", "incoming//double/"])
def test_a_file_entry_reads_its_bucket_and_key_from_its_partition_key_which_holds_them_once(key: str) -> None:
    stored = {"pk": encode(file_pk("my-bucket", key)), "sk": encode("etag1"), "size": encode(3)}

    entry = decode_item(stored)

    assert (entry["bucket"], entry["key"]) == ("my-bucket", key)
    assert entry_ref(entry).uri == f"s3://my-bucket/{key}"
    assert "key" not in decode_item({"pk": encode("worker"), "sk": encode("w1")}), "only file entries"


def test_outputs_are_stored_by_their_names_below_the_files_folder_and_read_back_whole() -> None:
    from dropq.ledger.codec import OUTPUT_NAMES, decode_item, file_pk, output_names

    key = "incoming/a b/photo.jpg"
    folder = f"processed/tables/{key}/"
    outputs = [f"{folder}data/part-000000000000.parquet", f"{folder}profile.json"]
    assert output_names("processed/", key, outputs) == ["data/part-000000000000.parquet", "profile.json"]
    names = {"L": [{"S": "data/part-000000000000.parquet"}, {"S": "profile.json"}]}
    item = {"pk": {"S": file_pk("b", key)}, "pipeline": {"S": "tables"}, OUTPUT_NAMES: names}
    assert decode_item(item, "processed/")["outputs"] == outputs
    # Outputs elsewhere (another folder, another pipeline's) are stored whole
    assert output_names("processed/", key, [*outputs, "processed/other/incoming/x/y.json"]) is None
    assert output_names("processed/", key, [f"processed/images/{key}/a.png", f"processed/tables/{key}/b.json"]) is None
    assert output_names("processed/", key, ["elsewhere/out.json"]) is None
    # An entry written before (its outputs whole) reads as it was
    old = {"pk": {"S": file_pk("b", key)}, "pipeline": {"S": "tables"}, "outputs": {"L": [{"S": outputs[1]}]}}
    assert decode_item(old, "processed/")["outputs"] == [outputs[1]]

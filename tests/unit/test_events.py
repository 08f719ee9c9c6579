from __future__ import annotations

from dropq.objects import ObjectRef
from dropq.topology import TOPOLOGY
from lambdas.producer.events import parse_s3_event
from tests.conftest import load_event


def test_keys_are_url_decoded_once() -> None:
    parsed = parse_s3_event(load_event("s3_put.json"), TOPOLOGY)
    assert parsed.objects == (
        ObjectRef(bucket="dropq-local", key="incoming/holiday photos/café (1).jpg", etag="d41d8cd98f00b204e9800998ecf8427e", size=1024),
    )


def test_moto_encodes_slashes_and_plus_signs() -> None:
    (ref,) = parse_s3_event(load_event("moto_put.json"), TOPOLOGY).objects
    assert ref.key == "incoming/a b+ü.txt"


def test_test_events_are_ignored() -> None:
    parsed = parse_s3_event(load_event("s3_test_event.json"), TOPOLOGY)
    assert parsed.objects == () and parsed.ignored == 0


def test_deletions_outputs_and_folders_are_ignored() -> None:
    parsed = parse_s3_event(load_event("s3_mixed.json"), TOPOLOGY)
    assert [o.key for o in parsed.objects] == ["incoming/a.csv", "incoming/b.png", "incoming/日本/data.JSONL"]
    assert parsed.objects[1].version_id == "v2"
    assert parsed.ignored == 3

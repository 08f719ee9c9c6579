"""The task's guards and error sorting, without AWS."""

from __future__ import annotations

import dataclasses

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from dropq.errors import InputError
from dropq.objects import ObjectRef
from dropq.settings import load_settings
from tasks.process import check_input
from tasks.storage import is_transient

SETTINGS = load_settings({"DROPQ_MAX_INPUT_BYTES": "1000"})
REF = ObjectRef(bucket="dropq-local", key="incoming/a.jpg", etag="e", size=10)


def test_a_good_input_gets_its_output_folder() -> None:
    assert check_input(REF, "images", SETTINGS) == "processed/images/incoming/a.jpg/"


@pytest.mark.parametrize(
    ("changes", "pipeline", "reason"),
    [
        ({"size": 0}, "images", r"the file is empty \(0 bytes\)"),
        ({"size": 1001}, "images", "the file is 1001 bytes, over the 1000-byte limit"),
        ({"key": "incoming/../../etc/passwd"}, "metadata", r"'\.\.' path segment"),
        ({"key": "incoming/" + "é" * 500}, "metadata", "the key is too long"),
        ({}, "nope", "no pipeline called 'nope'"),
    ],
)
def test_inputs_that_cannot_be_processed_safely_are_refused(changes: dict[str, object], pipeline: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        check_input(dataclasses.replace(REF, **changes), pipeline, SETTINGS)


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


def test_throttling_timeouts_and_5xx_are_transient_but_access_denied_is_not() -> None:
    assert is_transient(_client_error("SlowDown", 503))
    assert is_transient(_client_error("ProvisionedThroughputExceededException", 400))
    assert is_transient(_client_error("InternalError", 500))
    assert is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert is_transient(ReadTimeoutError(endpoint_url="http://x"))
    assert not is_transient(_client_error("AccessDenied", 403))
    assert not is_transient(_client_error("NoSuchKey", 404))

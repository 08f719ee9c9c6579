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
        ({"key": "incoming/reports/"}, "metadata", "the key ends in '/', which S3's console and tools show as a folder"),
        ({"key": "incoming/" + "é" * 500}, "metadata", "the key is too long"),
        # A table's outputs are named data/part-000000000000.parquet (30 bytes): a key that leaves room for a shorter
        # name only is refused at once, not by S3 once processed (KeyTooLongError)
        ({"key": "incoming/" + "t" * (1024 - len("processed/tables/incoming//") - 29) + ".csv"}, "tables", "the key is too long"),
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


def test_credentials_validation_and_access_denied_are_permanent_and_say_what_to_fix() -> None:
    from botocore.exceptions import NoCredentialsError, NoRegionError, ParamValidationError

    from dropq.errors import PermanentError, TransientError
    from tasks.storage import aws_errors

    for error in (NoCredentialsError(), NoRegionError(), ParamValidationError(report="Bucket is empty")):
        assert not is_transient(error), error
    cases = {
        NoCredentialsError(): "the worker has no usable AWS credentials",
        _client_error("AccessDenied", 403): "AWS refused access (AccessDenied: m): the worker's role lacks the permission",
        _client_error("ExpiredToken", 400): "AWS did not accept the worker's credentials (ExpiredToken: m)",
        _client_error("ValidationException", 400): "AWS refused the request as malformed (ValidationException: m)",
        ParamValidationError(report="Bucket is empty"): "the request was malformed",
    }
    for error, reason in cases.items():
        failing = pytest.raises(PermanentError, match=r"^reading s3://b/k: .*retrying will not help until that is fixed$")
        with failing as raised, aws_errors("reading s3://b/k"):
            raise error
        assert reason in str(raised.value) and "\n" not in str(raised.value), (error, raised.value)
    with pytest.raises(TransientError, match="SlowDown"), aws_errors("reading s3://b/k"):
        raise _client_error("SlowDown", 503)
    with pytest.raises(ClientError), aws_errors("reading s3://b/k"):
        raise _client_error("NoSuchKey", 404)  # its caller knows what a missing object means


def test_every_client_retries_in_the_sdks_standard_mode_unless_told_otherwise() -> None:
    from botocore.config import Config

    client = SETTINGS.client("s3")
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 4}
    once = SETTINGS.client("dynamodb", config=Config(read_timeout=3, retries={"mode": "standard", "total_max_attempts": 1}))
    assert once.meta.config.retries["total_max_attempts"] == 1 and once.meta.config.read_timeout == 3


def test_the_longest_key_a_pipelines_outputs_fit_in_passes() -> None:
    key = "incoming/" + "t" * (1024 - len("processed/tables/incoming//") - 30 - 4) + ".csv"
    folder = check_input(dataclasses.replace(REF, key=key), "tables", SETTINGS)
    assert len((folder + "data/part-000000000000.parquet").encode()) == 1024
    # An image's outputs are shorter: a key 14 bytes longer still fits them
    image = "incoming/" + "i" * (1024 - len("processed/images/incoming//") - 16 - 4) + ".jpg"
    assert check_input(dataclasses.replace(REF, key=image), "images", SETTINGS).endswith(".jpg/")

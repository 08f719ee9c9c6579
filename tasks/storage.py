"""S3 reads and writes for workers, with AWS errors sorted into permanent and transient ones."""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    CapacityNotAvailableError,
    ChecksumError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    UnknownCredentialError,
    ValidationError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from dropq.errors import InputError, PermanentError, TransientError
from dropq.objects import ObjectRef

CHUNK = 1024 * 1024
# S3 keys are at most 1024 bytes of UTF-8: https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html
S3_MAX_KEY_BYTES = 1024
# Outputs are uploaded side by side, this many at a time; those of this size or more go up in parts
# (boto3's default multipart threshold).
UPLOAD_THREADS = 8
MULTIPART_THRESHOLD = 8 * 1024 * 1024
# Error codes AWS documents as retryable: https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "InternalFailure",
    }
)
mimetypes.add_type("application/vnd.apache.parquet", ".parquet")


# Errors of the network and of the SDK's own retries: the request may well go through next time. Any other
# BotoCoreError is the SDK refusing to send it at all (no credentials, no region, a parameter that fails
# validation): sending it again changes nothing.
TRANSIENT_SDK_ERRORS = (BotoConnectionError, HTTPClientError, IncompleteReadError, ChecksumError, CapacityNotAvailableError)
# Why AWS, or the SDK, refuses a request for good, by what a person must fix: what the ledger's reason says.
CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, UnknownCredentialError, ProfileNotFound)
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
ACCESS_CODES = frozenset({"AccessDenied", "AccessDeniedException", "AllAccessDisabled", "AuthorizationError", "KMS.AccessDeniedException"})
VALIDATION_CODES = frozenset({"ValidationException", "ValidationError", "InvalidParameterValue", "InvalidArgument", "InvalidRequest"})


def _code(exc: ClientError) -> tuple[str, int]:
    return exc.response.get("Error", {}).get("Code", ""), int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_transient(exc: BaseException) -> bool:
    """Whether an AWS error is worth retrying: throttling, 5xx, timeouts, dropped connections (not credentials, access
    denied or a request that fails validation, which fail the same way every time)."""
    if isinstance(exc, ClientError):
        code, status = _code(exc)
        return code in TRANSIENT_CODES or status >= 500 or status == 429
    return isinstance(exc, TRANSIENT_SDK_ERRORS)


def permanent_reason(exc: BaseException) -> str | None:
    """What a person must fix when AWS refuses a request for good (credentials, permissions, a malformed request), or
    None when the error is not of that kind (a missing object, say, which its caller judges)."""
    if isinstance(exc, CREDENTIAL_ERRORS):
        return f"the worker has no usable AWS credentials ({type(exc).__name__}: {exc})"
    if isinstance(exc, NoRegionError):
        return f"the worker has no AWS region set ({exc})"
    if isinstance(exc, (ParamValidationError, ValidationError)):
        return f"the request was malformed and AWS's SDK refused to send it ({type(exc).__name__}: {exc})"
    if isinstance(exc, ClientError):
        code, status = _code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        if code in CREDENTIAL_CODES:
            return f"AWS did not accept the worker's credentials ({code}: {message})"
        if code in ACCESS_CODES or (status == 403 and code not in TRANSIENT_CODES):
            return f"AWS refused access ({code or status}: {message}): the worker's role lacks the permission"
        if code in VALIDATION_CODES:
            return f"AWS refused the request as malformed ({code}: {message})"
    if isinstance(exc, BotoCoreError) and not is_transient(exc):
        return f"AWS's SDK refused to send the request ({type(exc).__name__}: {exc})"
    return None


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn AWS errors into TransientError (retried) or PermanentError (the file fails with the reason), naming what
    was being done; any other error (a missing object, a failed precondition) goes to the caller as it was."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        if is_transient(exc):
            raise TransientError(f"{action}: {exc}") from exc
        reason = permanent_reason(exc)
        if reason is not None:
            # One line: it is the ledger's reason, read by a person.
            raise PermanentError(" ".join(f"{action}: {reason}; retrying will not help until that is fixed".split())) from exc
        raise


def download(s3: Any, ref: ObjectRef, dest: Path) -> str:
    """Stream the exact object version the event announced to `dest`; return its sha256."""
    digest = hashlib.sha256()
    try:
        with aws_errors(f"downloading {ref.uri}"):
            response = s3.get_object(Bucket=ref.bucket, Key=ref.key, IfMatch=f'"{ref.etag}"')
            with dest.open("wb") as out:
                for chunk in response["Body"].iter_chunks(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise InputError(f"{ref.uri} was deleted before it could be processed") from exc
        if code in ("PreconditionFailed", "412"):
            raise InputError(
                f"{ref.uri} was overwritten after this upload (its ETag is no longer {ref.etag}); the newer upload is processed on its own"
            ) from exc
        raise
    return digest.hexdigest()


def upload_file(s3: Any, bucket: str, path: Path, key: str) -> None:
    """One PutObject for a small file; boto3's managed (multipart, threaded) transfer for a large one."""
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    with aws_errors(f"uploading s3://{bucket}/{key}"):
        if path.stat().st_size < MULTIPART_THRESHOLD:
            with path.open("rb") as body:
                s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        else:
            s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})


def upload_folder(s3: Any, bucket: str, folder: Path, prefix: str) -> list[str]:
    """Upload every file below `folder` to `prefix` + its relative path, side by side; return the keys, sorted.
    InputError, and nothing uploaded, when a key would be longer than S3 allows (a pipeline's own output names)."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    keys = [prefix + path.relative_to(folder).as_posix() for path in paths]
    for key in keys:
        if (size := len(key.encode("utf-8"))) > S3_MAX_KEY_BYTES:
            name = key.removeprefix(prefix)
            raise InputError(
                f"the key is too long: its output {name!r} would have a key of {size} bytes, over S3's {S3_MAX_KEY_BYTES}-byte limit"
            )
    with ThreadPoolExecutor(max_workers=max(1, min(UPLOAD_THREADS, len(paths)))) as pool:
        # list() re-raises the first failure, once every upload has ended.
        list(pool.map(lambda pair: upload_file(s3, bucket, *pair), zip(paths, keys, strict=True)))
    return keys


def delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    """Remove outputs of a failed attempt (best effort: the ledger already says it failed)."""
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True})

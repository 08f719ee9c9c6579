"""The producer's signed messages are what Celery's `auth` serializer reads, and nothing else passes it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from celery.exceptions import SecurityError
from celery.security.certificate import Certificate, FSCertStore
from celery.security.serialization import SecureSerializer

from dropq.protocol import PROCESS_TASK, build_task_message, decode_task_message
from dropq.signing import Signer
from tests.signing_keys import make_identity


def _body(message: str) -> tuple[str, bytes]:
    envelope = json.loads(base64.b64decode(message))
    return envelope["content-type"], base64.b64decode(envelope["body"])


def test_a_signed_message_is_read_by_celerys_auth_serializer(tmp_path: Path) -> None:
    key, cert = make_identity(tmp_path / "store", "producer")
    kwargs = {"bucket": "b", "key": "incoming/ü.txt", "etag": "e", "size": 1, "pipeline": "metadata"}
    _, message = build_task_message(PROCESS_TASK, "default", kwargs, signer=Signer.from_files(str(key), str(cert)))
    content_type, body = _body(message)
    assert content_type == "application/data"
    reader = SecureSerializer(cert_store=FSCertStore(str(tmp_path / "store")), digest="sha256")
    assert reader.deserialize(body) == [[], kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    assert Certificate(cert.read_text()).get_id() == Signer.from_files(str(key), str(cert)).signer_id
    assert decode_task_message(message)["body"]["kwargs"] == kwargs, "dead-letter listings read signed messages too"


def test_a_message_signed_by_a_key_outside_the_store_is_refused(tmp_path: Path) -> None:
    make_identity(tmp_path / "store", "producer")
    key, cert = make_identity(tmp_path / "elsewhere", "intruder")
    _, message = build_task_message(PROCESS_TASK, "default", {"bucket": "b"}, signer=Signer.from_files(str(key), str(cert)))
    reader = SecureSerializer(cert_store=FSCertStore(str(tmp_path / "store")), digest="sha256")
    with pytest.raises(SecurityError):
        reader.deserialize(_body(message)[1])

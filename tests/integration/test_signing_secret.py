"""A deployment's signing keys in Secrets Manager become private files Celery reads; a bad secret is a clear error."""

from __future__ import annotations

import dataclasses
import json
import stat
import uuid
from pathlib import Path

import pytest
from celery.security.certificate import FSCertStore

from dropq.errors import ConfigError
from dropq.settings import Settings, load_settings
from dropq.signing import Signer, materialize
from tests.signing_keys import make_identity


def _secret(settings: Settings, value: str) -> str:
    name = f"dropq/signing-{uuid.uuid4().hex[:8]}"
    settings.client("secretsmanager").create_secret(Name=name, SecretString=value)
    return name


def test_the_secrets_keys_are_written_for_this_user_only_and_sign_as_the_certificate_in_the_store(
    moto_settings: Settings, tmp_path: Path
) -> None:
    key, cert = make_identity(tmp_path / "own", "dropq")
    _, other = make_identity(tmp_path / "partner", "partner")
    name = _secret(
        moto_settings,
        json.dumps({"key": key.read_text(), "certificate": cert.read_text(), "trusted": [cert.read_text(), other.read_text()]}),
    )

    settings = materialize(dataclasses.replace(moto_settings, signing_secret=name))

    assert settings.signing_secret is None, "the files are now the keys: a child process reads them, not the secret"
    assert stat.S_IMODE(Path(settings.signing_key).stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(settings.signing_key).parent.stat().st_mode) == 0o700
    store = FSCertStore(settings.signing_cert_store)
    signer = Signer.from_files(settings.signing_key, settings.signing_cert)
    assert store[signer.signer_id] is not None, "the deployment trusts its own signature"
    assert len(list(Path(settings.signing_cert_store).iterdir())) == 2
    # The environment carries the files, so settings loaded again from it agree
    assert load_settings(settings.environment()).signing_key == settings.signing_key


def test_without_trusted_certificates_the_deployment_trusts_its_own(moto_settings: Settings, tmp_path: Path) -> None:
    key, cert = make_identity(tmp_path / "own", "dropq")
    name = _secret(moto_settings, json.dumps({"key": key.read_text(), "certificate": cert.read_text()}))
    settings = materialize(dataclasses.replace(moto_settings, signing_secret=name))
    assert [p.read_text() for p in Path(settings.signing_cert_store).iterdir()] == [cert.read_text()]


def test_settings_without_a_secret_are_returned_as_they_are(moto_settings: Settings) -> None:
    assert materialize(moto_settings) is moto_settings


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-----BEGIN PRIVATE KEY-----", "is not JSON with fields key, certificate, trusted"),
        (json.dumps({"key": "PEM"}), r"has no certificate \(PEM text\)"),
        (json.dumps(["key", "certificate"]), "has no key or certificate"),
        (json.dumps({"key": "PEM", "certificate": "PEM", "trusted": [1, 2]}), "trusted a list of PEM certificates"),
    ],
)
def test_a_secret_that_is_not_the_keys_says_what_it_lacks(moto_settings: Settings, value: str, message: str) -> None:
    name = _secret(moto_settings, value)
    with pytest.raises(ConfigError, match=message) as raised:
        materialize(dataclasses.replace(moto_settings, signing_secret=name))
    assert name in str(raised.value)


def test_a_secret_that_does_not_exist_names_itself(moto_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="signing secret 'dropq/nowhere' cannot be read"):
        materialize(dataclasses.replace(moto_settings, signing_secret="dropq/nowhere"))


def test_keys_from_a_secret_and_from_files_at_once_are_refused(moto_settings: Settings) -> None:
    env = {**moto_settings.environment(), "DROPQ_SIGNING_SECRET": "dropq/signing"}
    env.update(DROPQ_SIGNING_KEY="/k", DROPQ_SIGNING_CERT="/c", DROPQ_SIGNING_CERT_STORE="/s")
    with pytest.raises(ConfigError, match="from DROPQ_SIGNING_SECRET or from files"):
        load_settings(env)

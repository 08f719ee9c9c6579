"""Signed task messages: Celery's `auth` serializer, written without Celery for the producer Lambda.

With message signing on (`DROPQ_SIGNING_KEY`, `DROPQ_SIGNING_CERT`, `DROPQ_SIGNING_CERT_STORE`, or a deployment's
`DROPQ_SIGNING_SECRET`), workers accept only messages signed by a certificate in their store, and sign what they send
themselves (retries). The producer signs its messages the same way: RSA-PSS over the JSON body, packed as
Celery's SecureSerializer packs it (celery/security/serialization.py), so an unmodified worker reads them.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from dropq.errors import ConfigError

# The JSON fields of a deployment's signing secret (DROPQ_SIGNING_SECRET): this deployment's RSA key and certificate, and
# the certificates whose signatures it accepts (optional: its own certificate).
SECRET_FIELDS = ("key", "certificate", "trusted")

# Celery's separator between the packed fields; it cannot occur in base64 or JSON text.
SEPARATOR = b"\x00\x01"


class Signer:
    """Signs serialized task bodies with an RSA key, naming its certificate as Celery does."""

    def __init__(self, key_pem: bytes, cert_pem: bytes) -> None:
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa
        except ImportError as exc:
            raise ConfigError(
                "message signing (DROPQ_SIGNING_KEY) needs the cryptography package: workers install it (celery[auth]); "
                "the producer's Lambda runtime does not have it, so give the function a layer that provides it"
            ) from exc

        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("message signing needs an RSA key (Celery supports no other)")
        certificate = x509.load_pem_x509_certificate(cert_pem)
        self._key = key
        # Celery's Certificate.get_id(): the issuer's attribute values, then the serial number.
        self.signer_id = f"{' '.join(str(attribute.value) for attribute in certificate.issuer)} {certificate.serial_number}"

    @classmethod
    def from_files(cls, key_path: str, cert_path: str) -> Signer:
        return cls(Path(key_path).read_bytes(), Path(cert_path).read_bytes())

    def sign(self, body: bytes) -> bytes:
        """The `auth` serialization of a JSON body: what a Celery worker with signing deserializes."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        digest = hashes.SHA256()
        signature = self._key.sign(body, padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.MAX_LENGTH), digest)
        fields = [
            base64.b64encode(self.signer_id.encode("utf-8")),
            base64.b64encode(signature),
            b"application/json",
            b"utf-8",
            body,
        ]
        return base64.b64encode(SEPARATOR.join(fields))


def signer_for(settings: Any) -> Signer | None:
    """The deployment's signer when signing is on, else None."""
    if not settings.signing_key:
        return None
    return Signer.from_files(settings.signing_key, settings.signing_cert)


def materialize(settings: Any, client: Any = None) -> Any:
    """Settings whose signing keys, when they come from a Secrets Manager secret, are private files (Celery reads files).

    Called once as a worker or the producer starts; settings without a signing secret are returned as they are.
    """
    if not settings.signing_secret:
        return settings
    client = client or settings.client("secretsmanager")
    name = settings.signing_secret
    try:
        fields = json.loads(client.get_secret_value(SecretId=name)["SecretString"])
    except ClientError as exc:
        raise ConfigError(f"signing secret {name!r} cannot be read: {exc.response['Error'].get('Message') or exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"signing secret {name!r} is not JSON with fields {', '.join(SECRET_FIELDS)}") from exc
    missing = [field for field in SECRET_FIELDS[:2] if not isinstance(fields, dict) or not fields.get(field)]
    if missing:
        raise ConfigError(f"signing secret {name!r} has no {' or '.join(missing)} (PEM text); it needs {', '.join(SECRET_FIELDS)}")
    trusted = fields.get("trusted") or [fields["certificate"]]
    if isinstance(trusted, str):
        trusted = [trusted]
    if (
        not isinstance(trusted, list)
        or not all(isinstance(pem, str) and pem for pem in trusted)
        or not all(isinstance(fields[f], str) for f in SECRET_FIELDS[:2])
    ):
        raise ConfigError(f"signing secret {name!r}: key and certificate are PEM text, and trusted a list of PEM certificates")
    folder = Path(tempfile.mkdtemp(prefix="dropq-signing-"))  # mode 0700: this process's user only
    key, certificate, store = folder / "signing.key", folder / "signing.pem", folder / "trusted"
    key.touch(mode=0o600)
    key.write_text(fields["key"])
    certificate.write_text(fields["certificate"])
    store.mkdir()
    for number, pem in enumerate(trusted):
        (store / f"{number}.pem").write_text(pem)
    os.chmod(store, 0o700)
    return dataclasses.replace(
        settings, signing_key=str(key), signing_cert=str(certificate), signing_cert_store=str(store), signing_secret=None
    )

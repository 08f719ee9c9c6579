"""Signed task messages: Celery's `auth` serializer, written without Celery for the producer Lambda.

With message signing on (`DROPQ_SIGNING_KEY`, `DROPQ_SIGNING_CERT`, `DROPQ_SIGNING_CERT_STORE`), workers
accept only messages signed by a certificate in their store, and sign what they send themselves
(retries). The producer signs its messages the same way: RSA-PSS over the JSON body, packed as
Celery's SecureSerializer packs it (celery/security/serialization.py), so an unmodified worker reads them.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from dropq.errors import ConfigError

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

"""Message signing a deployment turns on: `-c signing-secret=NAME` names a Secrets Manager secret of its keys.

The secret is made by its owner, not the stack (a private key must not pass through a template or an asset): JSON with
`key` (the RSA private key, PEM), `certificate` (its X.509 certificate, PEM) and, optionally, `trusted` (the
certificates whose signatures workers accept; by default the deployment's own). The producer and every worker read it
as they start (dropq/signing.py: materialize); the producer's asset then carries cryptography (infra/cloud/bundling.py).
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

CONTEXT_KEY = "signing-secret"


class MessageSigning(Construct):
    """The signing secret a deployment names, or none, and the grants to read it."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.name: str | None = self.node.try_get_context(CONTEXT_KEY) or None
        self.secret: secretsmanager.ISecret | None = None
        if self.name is None:
            return
        if self.name.startswith("arn:"):
            self.secret = secretsmanager.Secret.from_secret_complete_arn(self, "Secret", self.name)
        else:
            self.secret = secretsmanager.Secret.from_secret_name_v2(self, "Secret", self.name)

    @property
    def on(self) -> bool:
        return self.secret is not None

    def grant_read(self, grantee: iam.IGrantable) -> None:
        if self.secret is not None:
            self.secret.grant_read(grantee)

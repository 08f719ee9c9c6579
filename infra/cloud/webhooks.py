"""Webhooks a deployment turns on: their URL (CDK context `webhook-<name>-url`) and a signing secret in Secrets Manager.

`npx cdk deploy -c webhook-notify-url=https://hooks.example.com/dropq/` turns on the topology's `notify` webhook: the
workers get its URL, and the HMAC secret Secrets Manager generates (the `Webhook...Secret` output names it; receivers
read it there to check signatures).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from dropq.settings import webhook_variable
from dropq.topology import Topology
from infra.cloud.nag import acknowledge

SECRET_LENGTH = 48


def context_key(name: str) -> str:
    """The CDK context key that turns the webhook `name` on with its URL."""
    return f"webhook-{name}-url"


class WebhookSecrets(Construct):
    """The URL and generated secret of each webhook turned on, as worker environment and ECS secrets."""

    def __init__(self, scope: Construct, id: str, topology: Topology) -> None:
        super().__init__(scope, id)
        self.environment: dict[str, str] = {}
        self.secrets: dict[str, ecs.Secret] = {}
        self.generated: dict[str, secretsmanager.Secret] = {}
        for webhook in topology.webhooks:
            url = self.node.try_get_context(context_key(webhook.name))
            if not url:
                continue
            secret = secretsmanager.Secret(
                self,
                webhook.name,
                description=f"dropq: the HMAC-SHA256 key that signs the {webhook.name} webhook's requests",
                generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True, password_length=SECRET_LENGTH),
                removal_policy=cdk.RemovalPolicy.DESTROY,
            )
            acknowledge(
                secret,
                "AwsSolutions-SMG4",
                "The signing key is shared with the webhook's receivers, who read it here: rotating it is a change both sides make.",
            )
            self.environment[webhook_variable(webhook.name, "URL")] = url
            self.secrets[webhook_variable(webhook.name, "SECRET")] = ecs.Secret.from_secrets_manager(secret)
            self.generated[webhook.name] = secret

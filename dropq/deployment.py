"""Which dropq the CLI and the dashboard operate: the local cloud, or a deployed stack found by its name.

A stack publishes what operating it needs as CloudFormation outputs (infra/cloud/stack.py writes them
under the names below); `from_stack` reads them back. The local cloud names the same things itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from dropq.errors import ConfigError
from dropq.settings import Settings

# The stack outputs `from_stack` reads (the stack writes more, for people).
BUCKET_OUTPUT = "Bucket"
PREFIX_OUTPUT = "Prefix"
CLUSTER_OUTPUT = "ClusterName"
DASHBOARD_OUTPUT = "Dashboard"


def output_id(name: str) -> str:
    """A CloudFormation output id for a topology name ("default-dlq" -> "DefaultDlq")."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def service_output(pool: str) -> str:
    """The output holding the ECS service name of the pool called `pool`."""
    return f"Pool{output_id(pool)}Service"


@dataclass(frozen=True)
class Deployment:
    """Settings for a deployment's queues, tables and bucket, plus where its workers run (ECS cluster and services)."""

    settings: Settings
    cluster: str
    # Pool name -> its ECS service name.
    services: Mapping[str, str] = field(default_factory=dict)
    stack: str | None = None
    # The CloudWatch dashboard of a stack, for people.
    console_url: str | None = None

    @property
    def name(self) -> str:
        return self.stack or f"local ({self.settings.endpoint_url})"


def local_deployment(settings: Settings) -> Deployment:
    """The local cloud: its cluster and services are mirrored in moto's ECS by `dropq up`."""
    services = {pool.name: settings.physical_name(f"pool-{pool.name}") for pool in settings.topology.pools}
    return Deployment(settings=settings, cluster=settings.physical_name("workers"), services=services)


def from_stack(stack: str, settings: Settings) -> Deployment:
    """The deployment of the CloudFormation stack `stack`, from its outputs (`settings` gives the endpoint, region, credentials)."""
    cloudformation = settings.client("cloudformation")
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except cloudformation.exceptions.ClientError as exc:
        raise ConfigError(f"no stack {stack!r} in {settings.region}: {exc.response['Error'].get('Message', exc)}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    pools = settings.topology.pools
    needed = (BUCKET_OUTPUT, PREFIX_OUTPUT, CLUSTER_OUTPUT, *(service_output(p.name) for p in pools))
    missing = [key for key in needed if key not in outputs]
    if missing:
        raise ConfigError(f"stack {stack!r} is not a dropq stack of this version: it has no output {', '.join(missing)}")
    # arn:aws:cloudformation:<region>:<account>:stack/<name>/<id>
    account = described["StackId"].split(":")[4]
    resolved = replace(settings, bucket=outputs[BUCKET_OUTPUT], prefix=outputs[PREFIX_OUTPUT], account_id=account)
    return Deployment(
        settings=resolved,
        cluster=outputs[CLUSTER_OUTPUT],
        services={p.name: outputs[service_output(p.name)] for p in pools},
        stack=stack,
        console_url=outputs.get(DASHBOARD_OUTPUT),
    )

"""Settings read from the environment, once, at the edges (worker start, Lambda cold start, CLI).

Every environment variable dropq reads is named here. Without DROPQ_ENDPOINT_URL a process talks to AWS, whose
settings a deployed stack sets for its own resources (a worker or producer without them stops at start, naming
them: `require_deployment`); `dropq up`, the local cloud's workers and the tests set the local endpoint. The other
defaults are those of the local cloud.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dropq.errors import ConfigError
from dropq.topology import PROFILES, RATE_LIMIT, SQS_MAX_DELAY_SECONDS, TOPOLOGY, Topology

if TYPE_CHECKING:
    import boto3

ENDPOINT_URL = "DROPQ_ENDPOINT_URL"
REGION = "AWS_REGION"
DEFAULT_REGION = "AWS_DEFAULT_REGION"
ACCOUNT_ID = "DROPQ_ACCOUNT_ID"
BUCKET = "DROPQ_BUCKET"
STATE_DIR = "DROPQ_STATE_DIR"
MAX_RETRIES = "DROPQ_MAX_RETRIES"
MAX_INPUT_BYTES = "DROPQ_MAX_INPUT_BYTES"
PREFIX = "DROPQ_PREFIX"
# Which topology of dropq/topology.py's PROFILES this deployment runs ("default", "production").
PROFILE = "DROPQ_PROFILE"
# The longest SQS delay one message of a task with a countdown gets (SQS allows 900 s); longer countdowns hop.
DELAY_HOP_SECONDS = "DROPQ_DELAY_HOP_SECONDS"
# The sweep (a periodic task) enqueues again the files stuck in queued or running for longer than this.
STUCK_AFTER_SECONDS = "DROPQ_STUCK_AFTER_SECONDS"
# An image at least this large renders its thumbnail sizes side by side (tasks/pipelines/images.py); a smaller one
# renders them in one task, in less time than the messages of a chord take.
IMAGE_SPLIT_BYTES = "DROPQ_IMAGE_SPLIT_BYTES"
# A table larger than this is converted in chunks of about this size, side by side (tasks/pipelines/tables.py).
TABLE_CHUNK_BYTES = "DROPQ_TABLE_CHUNK_BYTES"
# Set on each worker by its pool (infra/worker.py): which pool of the topology this worker belongs to.
POOL = "DROPQ_POOL"
# Extra Python modules a worker imports at start, comma-separated: where your own `@pipeline`s live.
PIPELINE_MODULES = "DROPQ_PIPELINE_MODULES"
# Message signing (Celery's `auth` serializer): the RSA key and certificate that sign, and the folder of
# certificates whose signatures workers accept. Unset: plain JSON messages.
SIGNING_KEY = "DROPQ_SIGNING_KEY"
SIGNING_CERT = "DROPQ_SIGNING_CERT"
SIGNING_CERT_STORE = "DROPQ_SIGNING_CERT_STORE"
# Or, as a stack deploys it (`-c signing-secret=NAME`): a Secrets Manager secret holding the key, certificate and trusted
# certificates as PEM (dropq/signing.py: SECRET_FIELDS), written to private files when a worker or the producer starts.
SIGNING_SECRET = "DROPQ_SIGNING_SECRET"
# Injected by ECS into every task: the agent's endpoint, for scale-in protection (tasks/protection.py).
ECS_AGENT_URI = "ECS_AGENT_URI"

# How every client dropq makes retries AWS's throttling, 5xx and dropped connections before dropq's own retry (a task's,
# through SQS, with its backoff) takes over: the SDK's standard mode, exponential backoff with jitter, 4 attempts in
# all, and a retry quota that stops retrying when most calls fail (an outage, not a blip). (botocore's own
# `max_attempts` counts retries only; `total_max_attempts` counts the first attempt too.)
# https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
CLIENT_RETRIES = {"mode": "standard", "total_max_attempts": 4}

LOCAL_PORT = 4566
LOCAL_ENDPOINT = f"http://127.0.0.1:{LOCAL_PORT}"
# Where `dropq up` and `dropq dashboard` serve the dashboard.
DASHBOARD_PORT = 8321
# moto's fixed account; any credentials are accepted by the local cloud.
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Queues and tables are named <prefix><topology name>: "dropq-default" locally, "<stack>-default" in a stack.
DEFAULT_PREFIX = "dropq-"
# Leaves room for the longest topology name within SQS's 80 characters (checked by the topology).
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_-]{0,40}$")
MODULE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def webhook_variable(name: str, field: str) -> str:
    """The environment variable of one field (URL, SECRET, RATE_LIMIT) of the webhook called `name`."""
    return f"DROPQ_WEBHOOK_{name.upper()}_{field}"


@dataclass(frozen=True)
class WebhookEndpoint:
    """Where a topology webhook points in this deployment, the secret its requests are signed with, and its rate limit."""

    name: str
    url: str
    secret: str
    rate_limit: str | None = None


@dataclass(frozen=True)
class Settings:
    """Where dropq's resources are and how it behaves; built by `load_settings`."""

    topology: Topology = TOPOLOGY
    profile: str = "default"
    endpoint_url: str | None = LOCAL_ENDPOINT
    region: str = "us-east-1"
    account_id: str = LOCAL_ACCOUNT_ID
    bucket: str = TOPOLOGY.bucket
    state_dir: str = ".dropq"
    max_retries: int = 5
    max_input_bytes: int = TOPOLOGY.max_input_bytes
    prefix: str = DEFAULT_PREFIX
    delay_hop_seconds: int = SQS_MAX_DELAY_SECONDS
    table_chunk_bytes: int = 32 * 1024 * 1024
    image_split_bytes: int = 8 * 1024 * 1024
    stuck_after_seconds: int = 60 * 60
    pool: str | None = None
    pipeline_modules: tuple[str, ...] = ()
    ecs_agent_uri: str | None = None
    signing_key: str | None = None
    signing_cert: str | None = None
    signing_cert_store: str | None = None
    signing_secret: str | None = None
    webhook_endpoints: tuple[WebhookEndpoint, ...] = ()

    def webhook(self, name: str) -> WebhookEndpoint | None:
        """The deployment's endpoint of the topology webhook `name`, or None when it is off."""
        return next((e for e in self.webhook_endpoints if e.name == name), None)

    @property
    def shutdown_grace(self) -> int:
        """Seconds this worker's running tasks get after SIGTERM (its pool's, or the shortest of all pools)."""
        pools = [self.topology.pool(self.pool)] if self.pool else self.topology.pools
        return min(p.shutdown_grace for p in pools)

    @property
    def is_local(self) -> bool:
        """Whether dropq talks to a local cloud rather than AWS."""
        return self.endpoint_url is not None

    def physical_name(self, name: str) -> str:
        """The name in AWS (or moto) of a queue or table that the topology calls `name`."""
        return f"{self.prefix}{name}"

    def queue_url(self, name: str) -> str:
        """The SQS URL of a queue named in the topology."""
        base = self.endpoint_url or f"https://sqs.{self.region}.amazonaws.com"
        return f"{base}/{self.account_id}/{self.physical_name(name)}"

    def session(self) -> boto3.Session:
        """A boto3 session for this region (with the local cloud's dummy credentials when local)."""
        import boto3

        credentials: dict[str, Any] = {}
        if self.is_local:
            credentials = {
                "aws_access_key_id": LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            }
        return boto3.Session(region_name=self.region, **credentials)

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for `service` at this endpoint, retrying as `CLIENT_RETRIES` says (a `config` may say otherwise)."""
        from botocore.config import Config

        config = Config(retries=dict(CLIENT_RETRIES))
        if kwargs.get("config") is not None:
            config = config.merge(kwargs["config"])
        return self.session().client(service, endpoint_url=self.endpoint_url, **{**kwargs, "config": config})

    def environment(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in another process."""
        env = {
            ENDPOINT_URL: self.endpoint_url or "",
            REGION: self.region,
            DEFAULT_REGION: self.region,
            ACCOUNT_ID: self.account_id,
            BUCKET: self.bucket,
            STATE_DIR: self.state_dir,
            MAX_RETRIES: str(self.max_retries),
            MAX_INPUT_BYTES: str(self.max_input_bytes),
            PREFIX: self.prefix,
            PROFILE: self.profile,
            DELAY_HOP_SECONDS: str(self.delay_hop_seconds),
            TABLE_CHUNK_BYTES: str(self.table_chunk_bytes),
            IMAGE_SPLIT_BYTES: str(self.image_split_bytes),
            STUCK_AFTER_SECONDS: str(self.stuck_after_seconds),
            PIPELINE_MODULES: ",".join(self.pipeline_modules),
            SIGNING_KEY: self.signing_key or "",
            SIGNING_CERT: self.signing_cert or "",
            SIGNING_CERT_STORE: self.signing_cert_store or "",
            SIGNING_SECRET: self.signing_secret or "",
        }
        for endpoint in self.webhook_endpoints:
            env[webhook_variable(endpoint.name, "URL")] = endpoint.url
            env[webhook_variable(endpoint.name, "SECRET")] = endpoint.secret
            env[webhook_variable(endpoint.name, "RATE_LIMIT")] = endpoint.rate_limit or ""
        if self.is_local:
            env.update(LOCAL_CREDENTIALS)
        return env


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below its minimum {minimum}")
    return value


# What a process in AWS (no DROPQ_ENDPOINT_URL) must be told, beside its region: a stack sets them all.
AWS_REQUIRED = (ACCOUNT_ID, BUCKET, PREFIX)


def missing_for_aws(environ: Mapping[str, str]) -> list[str]:
    """The variables a process that talks to AWS (no endpoint set) needs and lacks; none for a local cloud."""
    if environ.get(ENDPOINT_URL):
        return []
    missing = [] if environ.get(REGION) or environ.get(DEFAULT_REGION) else [f"{REGION} (or {DEFAULT_REGION})"]
    # Set, even empty (an empty prefix is a prefix): load_settings checks each value.
    return missing + [name for name in AWS_REQUIRED if name not in environ]


def require_deployment(environ: Mapping[str, str] | None = None) -> None:
    """Stop a worker or producer at start, naming what is missing, when it would talk to AWS without its settings
    (instead of defaults that name no resource of any stack)."""
    missing = missing_for_aws(os.environ if environ is None else environ)
    if missing:
        raise ConfigError(
            f"{ENDPOINT_URL} is not set, so this process talks to AWS, which needs {', '.join(missing)}: not set. A stack sets "
            f"them for its workers and producer; for the local cloud, set {ENDPOINT_URL} (dropq up does)"
        )


def load_settings(environ: Mapping[str, str] | None = None, topology: Topology | None = None) -> Settings:
    """Build the settings from the environment, failing with the variable's name when one is malformed.

    The topology is the profile's that DROPQ_PROFILE names (dropq/topology.py: PROFILES), unless one is given.
    """
    environ = os.environ if environ is None else environ
    profile = environ.get(PROFILE) or "default"
    if profile not in PROFILES:
        raise ConfigError(f"{PROFILE}={profile!r} names no topology profile; known: {', '.join(PROFILES)}")
    topology = topology or PROFILES[profile]
    # Unset or empty: AWS. The local cloud's processes are given its endpoint (`local_settings`, `dropq up`).
    endpoint = environ.get(ENDPOINT_URL) or ""
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{ENDPOINT_URL}={endpoint!r} is not an http(s) URL; leave it empty to use AWS")
    account = environ.get(ACCOUNT_ID, LOCAL_ACCOUNT_ID)
    if not (account.isdigit() and len(account) == 12):
        raise ConfigError(f"{ACCOUNT_ID}={account!r} is not a 12-digit AWS account id")
    prefix = environ.get(PREFIX, DEFAULT_PREFIX)
    if not PREFIX_PATTERN.match(prefix):
        raise ConfigError(f"{PREFIX}={prefix!r} must match {PREFIX_PATTERN.pattern}")
    hop = _int(environ, DELAY_HOP_SECONDS, SQS_MAX_DELAY_SECONDS, 1)
    if hop > SQS_MAX_DELAY_SECONDS:
        raise ConfigError(f"{DELAY_HOP_SECONDS}={hop} is above SQS's longest delay, {SQS_MAX_DELAY_SECONDS}")
    pool = environ.get(POOL) or None
    if pool is not None and pool not in {p.name for p in topology.pools}:
        raise ConfigError(f"{POOL}={pool!r} names no pool of the topology; known: {', '.join(p.name for p in topology.pools)}")
    modules = pipeline_modules(environ)
    signing = {name: environ.get(name) or None for name in (SIGNING_KEY, SIGNING_CERT, SIGNING_CERT_STORE)}
    if any(signing.values()) and not all(signing.values()):
        missing = ", ".join(name for name, value in signing.items() if not value)
        raise ConfigError(f"message signing needs {SIGNING_KEY}, {SIGNING_CERT} and {SIGNING_CERT_STORE}; missing: {missing}")
    signing_secret = environ.get(SIGNING_SECRET) or None
    if signing_secret and any(signing.values()):
        raise ConfigError(f"message signing takes its keys from {SIGNING_SECRET} or from files ({SIGNING_KEY}, ...), not both")
    endpoints = []
    for webhook in topology.webhooks:
        url, secret, rate = (environ.get(webhook_variable(webhook.name, f)) or "" for f in ("URL", "SECRET", "RATE_LIMIT"))
        if not url:
            continue
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ConfigError(f"{webhook_variable(webhook.name, 'URL')}={url!r} is not an http(s) URL")
        if not secret:
            raise ConfigError(
                f"{webhook_variable(webhook.name, 'URL')} is set without {webhook_variable(webhook.name, 'SECRET')}: webhooks are signed"
            )
        if rate and not RATE_LIMIT.match(rate):
            raise ConfigError(f"{webhook_variable(webhook.name, 'RATE_LIMIT')}={rate!r} is not like '10/s' or '100/m'")
        endpoints.append(WebhookEndpoint(name=webhook.name, url=url, secret=secret, rate_limit=rate or None))
    return Settings(
        topology=topology,
        profile=profile,
        endpoint_url=endpoint.rstrip("/") or None,
        region=environ.get(REGION) or environ.get(DEFAULT_REGION) or "us-east-1",
        account_id=account,
        bucket=environ.get(BUCKET) or topology.bucket,
        state_dir=environ.get(STATE_DIR) or ".dropq",
        max_retries=_int(environ, MAX_RETRIES, 5, 0),
        max_input_bytes=_int(environ, MAX_INPUT_BYTES, topology.max_input_bytes, 1),
        prefix=prefix,
        delay_hop_seconds=hop,
        table_chunk_bytes=_int(environ, TABLE_CHUNK_BYTES, Settings.table_chunk_bytes, 64 * 1024),
        image_split_bytes=_int(environ, IMAGE_SPLIT_BYTES, Settings.image_split_bytes, 0),
        stuck_after_seconds=_int(environ, STUCK_AFTER_SECONDS, Settings.stuck_after_seconds, 1),
        pool=pool,
        pipeline_modules=modules,
        ecs_agent_uri=environ.get(ECS_AGENT_URI) or None,
        signing_key=signing[SIGNING_KEY],
        signing_cert=signing[SIGNING_CERT],
        signing_cert_store=signing[SIGNING_CERT_STORE],
        signing_secret=signing_secret,
        webhook_endpoints=tuple(endpoints),
    )


def pipeline_modules(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The modules of your own pipelines that DROPQ_PIPELINE_MODULES names (comma-separated), checked."""
    modules = tuple(m.strip() for m in environ.get(PIPELINE_MODULES, "").split(",") if m.strip())
    for module in modules:
        if not MODULE_PATTERN.match(module):
            raise ConfigError(f"{PIPELINE_MODULES}: {module!r} is not a Python module path like 'mypackage.pipelines'")
    return modules


def local_settings(port: int = LOCAL_PORT, state_dir: str = ".dropq", **changes: Any) -> Settings:
    """The settings of a local cloud on `port`."""
    return replace(Settings(), endpoint_url=f"http://127.0.0.1:{port}", state_dir=state_dir, **changes)

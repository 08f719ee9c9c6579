"""Settings read from the environment, once, at the edges (worker start, Lambda cold start, CLI).

Every environment variable dropq reads is a row of `VARIABLES` (dropq/variables.py: Variable), from which loading,
`Settings.environment()` and the documentation (`dropq settings`, SETTINGS.md) are derived. Without DROPQ_ENDPOINT_URL
a process talks to AWS, whose settings a deployed stack sets for its own resources (a worker or producer without them
stops at start, naming them: `require_deployment`); `dropq up`, the local cloud's workers and the tests set the local
endpoint. The other defaults are those of the local cloud.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from dropq.errors import ConfigError
from dropq.topology import PROFILES, RATE_LIMIT, SQS_MAX_DELAY_SECONDS, TOPOLOGY, Topology
from dropq.variables import Choice, Integer, Names, Text, Url, Variable, is_http_url, markdown, table

if TYPE_CHECKING:
    import boto3

ENDPOINT_URL = "DROPQ_ENDPOINT_URL"
REGION = "AWS_REGION"
DEFAULT_REGION = "AWS_DEFAULT_REGION"
ACCOUNT_ID = "DROPQ_ACCOUNT_ID"
BUCKET = "DROPQ_BUCKET"
PREFIX = "DROPQ_PREFIX"
PROFILE = "DROPQ_PROFILE"
STATE_DIR = "DROPQ_STATE_DIR"
MAX_RETRIES = "DROPQ_MAX_RETRIES"
MAX_INPUT_BYTES = "DROPQ_MAX_INPUT_BYTES"
DELAY_HOP_SECONDS = "DROPQ_DELAY_HOP_SECONDS"
IMAGE_SPLIT_BYTES = "DROPQ_IMAGE_SPLIT_BYTES"
TABLE_CHUNK_BYTES = "DROPQ_TABLE_CHUNK_BYTES"
POOL = "DROPQ_POOL"
PIPELINE_MODULES = "DROPQ_PIPELINE_MODULES"
SIGNING_KEY = "DROPQ_SIGNING_KEY"
SIGNING_CERT = "DROPQ_SIGNING_CERT"
SIGNING_CERT_STORE = "DROPQ_SIGNING_CERT_STORE"
SIGNING_SECRET = "DROPQ_SIGNING_SECRET"
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


MIB = 1024 * 1024
ACCOUNT_PATTERN = re.compile(r"^[0-9]{12}$")
PATHS = Text(described="a path")

# Every variable dropq reads, in the order they are checked and documented.
VARIABLES = (
    Variable(
        ENDPOINT_URL,
        "endpoint_url",
        Url(hint="leave it empty to use AWS"),
        None,
        "Where AWS is: unset or empty for AWS itself; `dropq up` and the tests set the local cloud's.",
    ),
    Variable(
        REGION, "region", Text(described="a region name"), "us-east-1", "The AWS region.", aliases=(DEFAULT_REGION,), aws_required=True
    ),
    Variable(
        ACCOUNT_ID,
        "account_id",
        Text(ACCOUNT_PATTERN, "is not a 12-digit AWS account id", "12 digits"),
        LOCAL_ACCOUNT_ID,
        "The AWS account that owns the queues (moto's, locally).",
        empty_is_value=True,
        aws_required=True,
    ),
    Variable(BUCKET, "bucket", Text(described="a bucket name"), lambda t: t.bucket, "The bucket of inputs and outputs.", aws_required=True),
    Variable(
        PREFIX,
        "prefix",
        Text(PREFIX_PATTERN),
        DEFAULT_PREFIX,
        "Queues and tables are named <prefix><topology name> (a stack's is `<stack>-`); empty is a prefix too.",
        empty_is_value=True,
        aws_required=True,
    ),
    Variable(
        PROFILE,
        "profile",
        Choice(lambda t: PROFILES, "topology profile", ", ".join(PROFILES)),
        "default",
        "Which topology of dropq/topology.py's PROFILES this deployment runs.",
    ),
    Variable(STATE_DIR, "state_dir", PATHS, ".dropq", "Where the local cloud and the CLI keep their files."),
    Variable(MAX_RETRIES, "max_retries", Integer(0), 5, "Retries of a transient error before the file fails."),
    Variable(
        MAX_INPUT_BYTES,
        "max_input_bytes",
        Integer(1),
        lambda t: t.max_input_bytes,
        'A larger input fails at once ("too large") instead of being read.',
    ),
    Variable(
        DELAY_HOP_SECONDS,
        "delay_hop_seconds",
        Integer(1, SQS_MAX_DELAY_SECONDS, "SQS's longest delay"),
        SQS_MAX_DELAY_SECONDS,
        "The longest SQS delay one message of a countdown gets; longer countdowns hop.",
    ),
    Variable(
        TABLE_CHUNK_BYTES,
        "table_chunk_bytes",
        Integer(64 * 1024),
        32 * MIB,
        "A larger table is converted in chunks of about this size, side by side (tasks/pipelines/tables.py).",
    ),
    Variable(
        IMAGE_SPLIT_BYTES,
        "image_split_bytes",
        Integer(0),
        8 * MIB,
        "An image this large renders its thumbnail sizes side by side (tasks/pipelines/images.py); "
        "a smaller one in one task, in less time than a chord's messages take.",
    ),
    Variable(
        POOL,
        "pool",
        Choice(lambda t: [p.name for p in t.pools], "pool of the topology", "a pool of the topology"),
        None,
        "Which pool of the topology this worker belongs to; set on each worker by its pool (infra/worker.py).",
        passed=False,
    ),
    Variable(
        PIPELINE_MODULES,
        "pipeline_modules",
        Names(MODULE_PATTERN, "Python module path", "mypackage.pipelines"),
        (),
        "Extra modules a worker imports at start: where your own `@pipeline`s live.",
    ),
    Variable(
        SIGNING_KEY,
        "signing_key",
        PATHS,
        None,
        "Message signing (Celery's `auth` serializer): the RSA key that signs. Unset: plain JSON messages.",
    ),
    Variable(SIGNING_CERT, "signing_cert", PATHS, None, "Message signing: the certificate of that key."),
    Variable(SIGNING_CERT_STORE, "signing_cert_store", PATHS, None, "Message signing: the folder of certificates workers trust."),
    Variable(
        SIGNING_SECRET,
        "signing_secret",
        Text(described="a secret's name or ARN"),
        None,
        "Or, as a stack deploys it (`-c signing-secret=NAME`): a Secrets Manager secret holding the key, certificate "
        "and trusted certificates as PEM (dropq/signing.py), written to private files when a worker or the producer starts.",
    ),
    Variable(
        ECS_AGENT_URI,
        "ecs_agent_uri",
        Text(described="the agent's URL"),
        None,
        "Injected by ECS into every task: the agent's endpoint, for scale-in protection (tasks/protection.py).",
        passed=False,
    ),
)
# The family of variables each topology webhook reads, documented beside the table.
WEBHOOK_VARIABLES = (
    ("DROPQ_WEBHOOK_<NAME>_URL", "an http(s) URL", "", "Turns the topology webhook <NAME> on: where it posts."),
    ("DROPQ_WEBHOOK_<NAME>_SECRET", "any text", "", "The secret its requests are signed with (needed with a URL)."),
    ("DROPQ_WEBHOOK_<NAME>_RATE_LIMIT", "like `10/s`, `100/m`", "", "This deployment's rate limit, over the topology's."),
)


def reference(others: tuple[tuple[str, str, str, str], ...] = ()) -> str:
    """The documentation of every variable (and `others`, the CLI's own), as SETTINGS.md holds it."""
    return (
        "# Settings\n\nEvery environment variable dropq reads, generated from dropq/settings.py (`dropq settings --markdown`);"
        " `dropq settings` shows what this environment gives a worker or the producer. Defaults are the local cloud's;"
        " a stack sets its own for its workers and producer.\n\n" + markdown([*table(VARIABLES, TOPOLOGY), *WEBHOOK_VARIABLES, *others])
    )


def variable(name: str) -> Variable:
    """The row of the variable called `name`."""
    return next(v for v in VARIABLES if v.name == name)


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
    """Where dropq's resources are and how it behaves: a field for each row of `VARIABLES`, built by `load_settings`
    (or `Settings.defaults`)."""

    topology: Topology
    profile: str
    endpoint_url: str | None
    region: str
    account_id: str
    bucket: str
    state_dir: str
    max_retries: int
    max_input_bytes: int
    prefix: str
    delay_hop_seconds: int
    table_chunk_bytes: int
    image_split_bytes: int
    pool: str | None
    pipeline_modules: tuple[str, ...]
    ecs_agent_uri: str | None
    signing_key: str | None
    signing_cert: str | None
    signing_cert_store: str | None
    signing_secret: str | None
    webhook_endpoints: tuple[WebhookEndpoint, ...] = ()

    @classmethod
    def defaults(cls, topology: Topology = TOPOLOGY, **changes: Any) -> Settings:
        """The settings of a deployment of `topology` where no variable is set, with `changes`."""
        values = {v.field: v.default_for(topology) for v in VARIABLES}
        return cls(topology=topology, **{**values, **changes})

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
        env: dict[str, str] = {}
        for v in VARIABLES:
            if v.passed:
                env.update(v.environment(getattr(self, v.field)))
        for endpoint in self.webhook_endpoints:
            env[webhook_variable(endpoint.name, "URL")] = endpoint.url
            env[webhook_variable(endpoint.name, "SECRET")] = endpoint.secret
            env[webhook_variable(endpoint.name, "RATE_LIMIT")] = endpoint.rate_limit or ""
        if self.is_local:
            env.update(LOCAL_CREDENTIALS)
        return env


def missing_for_aws(environ: Mapping[str, str]) -> list[str]:
    """The variables a process that talks to AWS (no endpoint set) needs and lacks; none for a local cloud."""
    if environ.get(ENDPOINT_URL):
        return []
    required = [v for v in VARIABLES if v.aws_required and v.raw(environ) is None]
    return [" (or ".join((v.name, *v.aliases)) + ")" * len(v.aliases) for v in required]


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
    """Build the settings from the environment, each variable as its row of `VARIABLES` says, failing with the
    variable's name when one is malformed.

    The topology is the profile's that DROPQ_PROFILE names (dropq/topology.py: PROFILES), unless one is given.
    """
    environ = os.environ if environ is None else environ
    topology = topology or PROFILES[variable(PROFILE).load(environ, TOPOLOGY)]
    values = {v.field: v.load(environ, topology) for v in VARIABLES}
    signing = {v.name: values[v.field] for v in map(variable, (SIGNING_KEY, SIGNING_CERT, SIGNING_CERT_STORE))}
    if any(signing.values()) and not all(signing.values()):
        missing = ", ".join(name for name, value in signing.items() if not value)
        raise ConfigError(f"message signing needs {SIGNING_KEY}, {SIGNING_CERT} and {SIGNING_CERT_STORE}; missing: {missing}")
    if values["signing_secret"] and any(signing.values()):
        raise ConfigError(f"message signing takes its keys from {SIGNING_SECRET} or from files ({SIGNING_KEY}, ...), not both")
    return Settings(topology=topology, webhook_endpoints=webhook_endpoints(environ, topology), **values)


def webhook_endpoints(environ: Mapping[str, str], topology: Topology) -> tuple[WebhookEndpoint, ...]:
    """The topology webhooks this deployment turns on (DROPQ_WEBHOOK_<NAME>_URL), each checked."""
    endpoints = []
    for webhook in topology.webhooks:
        url, secret, rate = (environ.get(webhook_variable(webhook.name, f)) or "" for f in ("URL", "SECRET", "RATE_LIMIT"))
        if not url:
            continue
        if not is_http_url(url):
            raise ConfigError(f"{webhook_variable(webhook.name, 'URL')}={url!r} is not an http(s) URL")
        if not secret:
            raise ConfigError(
                f"{webhook_variable(webhook.name, 'URL')} is set without {webhook_variable(webhook.name, 'SECRET')}: webhooks are signed"
            )
        if rate and not RATE_LIMIT.match(rate):
            raise ConfigError(f"{webhook_variable(webhook.name, 'RATE_LIMIT')}={rate!r} is not like '10/s' or '100/m'")
        endpoints.append(WebhookEndpoint(name=webhook.name, url=url, secret=secret, rate_limit=rate or None))
    return tuple(endpoints)


def pipeline_modules(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The modules of your own pipelines that DROPQ_PIPELINE_MODULES names (comma-separated), checked."""
    modules: tuple[str, ...] = variable(PIPELINE_MODULES).load(environ, TOPOLOGY)
    return modules


def local_settings(port: int = LOCAL_PORT, state_dir: str = ".dropq", **changes: Any) -> Settings:
    """The settings of a local cloud on `port`."""
    return Settings.defaults(endpoint_url=f"http://127.0.0.1:{port}", state_dir=state_dir, **changes)


# Each field of Settings but the topology and the webhooks is a variable's, and each variable fills one.
_FILLED = {f.name for f in fields(Settings)} - {"topology", "webhook_endpoints"}
if sorted(v.field for v in VARIABLES) != sorted(_FILLED):
    raise ConfigError(f"VARIABLES fill {sorted(v.field for v in VARIABLES)}, Settings has {sorted(_FILLED)}")

"""The producer Lambda's code asset: only the modules its handler imports (no Celery, no pipelines).

Bundled by copying files, so `cdk synth` needs neither Docker nor the network. Powertools comes from
its public Lambda layer; boto3 from the Lambda runtime.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

ROOT = Path(__file__).resolve().parents[2]
# What `lambdas.producer.handler` imports, transitively (tests/unit/test_stack.py imports the handler from the asset alone).
PRODUCER_MODULES = (
    "lambdas/__init__.py",
    "lambdas/producer/__init__.py",
    "lambdas/producer/handler.py",
    "lambdas/producer/events.py",
    "lambdas/producer/enqueue.py",
    "lambdas/producer/schedules.py",
    "dropq/__init__.py",
    "dropq/settings.py",
    "dropq/errors.py",
    "dropq/ledger.py",
    "dropq/objects.py",
    "dropq/shards.py",
    "dropq/observe.py",
    "dropq/protocol.py",
    "dropq/signing.py",
    "infra/__init__.py",
    "infra/topology.py",
)


def copy_producer_modules(output_dir: str | Path) -> None:
    """Copy the producer's modules, keeping their package paths, into `output_dir`."""
    for relative in PRODUCER_MODULES:
        target = Path(output_dir) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / relative, target)


@jsii.implements(cdk.ILocalBundling)
class _CopyModules:
    def try_bundle(self, output_dir: str, options: Any) -> bool:
        copy_producer_modules(output_dir)
        return True


def producer_code() -> lambda_.Code:
    """The producer's asset, hashed by its content (the repository around it does not change it)."""
    return lambda_.Code.from_asset(
        str(ROOT / "lambdas"),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(
            # Never used: local bundling always succeeds. CDK requires an image to fall back on.
            image=lambda_.Runtime.PYTHON_3_14.bundling_image,
            local=_CopyModules(),
        ),
    )

"""The producer Lambda's code asset: the core and the producer's packages (no Celery, no pipelines).

Bundled by copying files, so `cdk synth` needs neither Docker nor the network. Powertools comes from
its public Lambda layer; boto3 from the Lambda runtime. With message signing on, the asset also carries cryptography
(the version the workers run), installed by pip as wheels for the function's runtime and architecture: then synthesis
needs PyPI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

ROOT = Path(__file__).resolve().parents[2]
# The producer's asset is the core (dropq/, which imports nothing else of the project: the import contracts in
# pyproject.toml) and the producer (lambdas/), as folders: a new module needs no list edited here.
PRODUCER_PACKAGES = ("dropq", "lambdas")
# Every module the asset carries, by its path (tests/stack/test_stack.py checks the staged asset against it).
PRODUCER_MODULES = tuple(
    sorted(
        str(path.relative_to(ROOT))
        for package in PRODUCER_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    )
)


def signing_requirements() -> tuple[str, ...]:
    """What message signing adds to the producer: cryptography at the version installed here (Celery's `auth` extra pins
    it, so the workers run the same one)."""
    return (f"cryptography=={version('cryptography')}",)


@dataclass(frozen=True)
class Target:
    """The Python a bundle is for: pip's platform tag and the Python version, or None for this interpreter's own."""

    platform: str | None = None
    python_version: str | None = None


def bundle_producer(output_dir: str | Path, signing: bool = False, target: Target = Target()) -> None:
    """The producer's packages in `output_dir`; with signing, cryptography's wheels too."""
    for package in PRODUCER_PACKAGES:
        shutil.copytree(
            ROOT / package, Path(output_dir) / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True
        )
    if not signing:
        return
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--only-binary=:all:", "--target", str(output_dir)]
    if target.platform:
        command += ["--platform", target.platform, "--implementation", "cp"]
    if target.python_version:
        command += ["--python-version", target.python_version]
    installed = subprocess.run([*command, *signing_requirements()], capture_output=True, text=True, timeout=600)
    if installed.returncode != 0:
        raise RuntimeError(
            f"message signing is on: bundling {', '.join(signing_requirements())} for the producer needs PyPI; pip said:\n"
            + installed.stderr[-2000:]
        )


@jsii.implements(cdk.ILocalBundling)
class _Bundle:
    def __init__(self, signing: bool, target: Target) -> None:
        self.signing, self.target = signing, target

    def try_bundle(self, output_dir: str, options: Any) -> bool:
        bundle_producer(output_dir, self.signing, self.target)
        return True


def producer_code(runtime: lambda_.Runtime, signing: bool, target: Target) -> lambda_.Code:
    """The producer's asset, hashed by its content (the repository around it does not change it)."""
    return lambda_.Code.from_asset(
        str(ROOT / "lambdas"),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(
            # Never used: local bundling always succeeds. CDK requires an image to fall back on.
            image=runtime.bundling_image,
            local=_Bundle(signing, target),
        ),
    )

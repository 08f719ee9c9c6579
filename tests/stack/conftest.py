"""The CDK app synthesized once per session (with cdk-nag's checks), and its template."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# jsii warns at every start that Node 20 is past its end of life; the machines run Node 20.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from aws_cdk.assertions import Template

from infra.cloud.app import build_app, cdk_json_context
from infra.cloud.stack import DropqStack


@dataclass
class Synthesized:
    stack: DropqStack
    template: Template
    outdir: Path

    @property
    def resources(self) -> dict[str, Any]:
        return self.template.to_json()["Resources"]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """Logical id -> properties of every resource of a CloudFormation type."""
        return {k: r.get("Properties", {}) for k, r in self.resources.items() if r["Type"] == kind}


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """`cdk synth` of the app as `cdk.json` runs it; synthesis raises if cdk-nag reports an unacknowledged error."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(cdk.App(outdir=str(outdir), context=cdk_json_context()))
    app.synth()
    template = Template.from_json(json.loads((outdir / f"{stack.stack_name}.template.json").read_text()))
    return Synthesized(stack=stack, template=template, outdir=outdir)

"""`make synth`: the CDK command line, installed in the project, synthesizes the app from cdk.json offline."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.stack.conftest import Synthesized

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / "node_modules" / ".bin" / "cdk"


def resource_types(resources: dict[str, Any]) -> dict[str, str]:
    return {k: r["Type"] for k, r in resources.items() if k != "CDKMetadata"}


def test_cdk_synth_runs_the_app_of_cdk_json_without_an_account(synthesized: Synthesized, tmp_path: Path) -> None:
    assert CDK.exists(), "the CDK CLI is installed by `make install` / `make test` (npm ci)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_DEFAULT_"))}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "--no-notices", "--output", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((tmp_path / "dropq.template.json").read_text())
    # The same app: the CLI adds only its version-reporting resource (asset hashes depend on staging, so types are compared).
    assert resource_types(template["Resources"]) == resource_types(synthesized.resources)
    assert template["Outputs"].keys() == synthesized.template.to_json()["Outputs"].keys()

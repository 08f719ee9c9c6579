"""The worker image, checked without Docker: its stages, its user, and that its COPYs give the worker all it imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from dockerfile_parse import DockerfileParser

from infra.worker import WORKER_ENVIRONMENT
from tests.stack.conftest import Synthesized

ROOT = Path(__file__).resolve().parents[2]


def parsed() -> list[dict[str, str]]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return parser.structure


def stages(instructions: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    result: list[list[dict[str, str]]] = []
    for instruction in instructions:
        if instruction["instruction"] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def image_context(synthesized: Synthesized) -> Path:
    """The Docker build context `cdk synth` staged for the worker image (after .dockerignore)."""
    manifest = json.loads((synthesized.outdir / f"{synthesized.stack.stack_name}.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    return synthesized.outdir / image["source"]["directory"]


def test_runtime_stage_is_slim_runs_as_a_user_and_starts_a_celery_worker() -> None:
    build, runtime = stages(parsed())
    assert all("-slim" in stage[0]["value"] for stage in (build, runtime))
    by_kind = {i["instruction"]: i["value"] for i in runtime}
    assert by_kind["USER"] not in ("root", "0")
    assert json.loads(by_kind["CMD"])[:4] == ["celery", "-A", "tasks", "worker"]
    assert by_kind["STOPSIGNAL"] == "SIGTERM"
    env = " ".join(i["value"] for i in runtime if i["instruction"] == "ENV")
    assert all(f"{k}={v}" in env for k, v in WORKER_ENVIRONMENT.items())
    # pycurl: compiled against libcurl+OpenSSL in the build stage, only the shared library at run time.
    assert "libcurl4-openssl-dev" in " ".join(i["value"] for i in build if i["instruction"] == "RUN")
    runtime_runs = " ".join(i["value"] for i in runtime if i["instruction"] == "RUN")
    assert "libcurl4" in runtime_runs and "gcc" not in runtime_runs


def test_the_files_the_dockerfile_copies_are_in_the_synthesized_context_and_make_a_working_worker(
    synthesized: Synthesized, tmp_path: Path
) -> None:
    """Apply the build stage's COPYs to the staged context, then import the worker app from the result alone."""
    context = image_context(synthesized)
    build = stages(parsed())[0]
    src = tmp_path / "src"
    for copy in (i["value"].split() for i in build if i["instruction"] == "COPY"):
        *sources, destination = copy
        target = src / destination.rstrip("/") if destination not in ("./", ".") else src
        for source in sources:
            origin = context / source
            assert origin.exists(), f"COPY {source}: not in the build context (.dockerignore?)"
            if origin.is_dir():
                shutil.copytree(origin, target if len(sources) == 1 and not destination.endswith("/") else target / origin.name)
            else:
                place = target / origin.name if destination.endswith("/") else target
                place.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(origin, place)
    probe = f"""
import sys
sys.path.insert(0, {str(src)!r})
import tasks
ours = ("dropq", "tasks", "infra", "lambdas")
loaded = [m.__file__ for n, m in sys.modules.items() if n.split(".")[0] in ours and getattr(m, "__file__", None)]
assert all(f.startswith({str(src)!r}) for f in loaded), [f for f in loaded if not f.startswith({str(src)!r})]
print(" ".join(sorted(t for t in tasks.app.tasks if t.startswith("dropq."))))
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [
        "dropq.combine",
        "dropq.part",
        "dropq.process",
        "dropq.report",
        "dropq.sweep",
        "dropq.webhook.notify",
    ]
    assert (src / "pyproject.toml").exists()

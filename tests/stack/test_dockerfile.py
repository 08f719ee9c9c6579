"""The worker image, checked without Docker: its stages, its user, and that its COPYs give the worker all it imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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


def build_stage_source(synthesized: Synthesized, tmp_path: Path) -> Path:
    """The build stage's WORKDIR after its COPYs, made from the build context `cdk synth` staged."""
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
    return src


def test_the_files_the_dockerfile_copies_are_in_the_synthesized_context_and_make_a_working_worker(
    synthesized: Synthesized, tmp_path: Path
) -> None:
    """Apply the build stage's COPYs to the staged context, then import the worker app from the result alone."""
    src = build_stage_source(synthesized, tmp_path)
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
        "dropq.webhook.notify",
    ]
    assert (src / "pyproject.toml").exists()


def _build_environment(build: list[dict[str, str]]) -> dict[str, str]:
    """The build stage's ENV settings (KEY=VALUE pairs), as its RUN steps see them."""
    found: dict[str, str] = {}
    for value in (i["value"] for i in build if i["instruction"] == "ENV"):
        found.update(pair.split("=", 1) for pair in value.split() if "=" in pair)
    return found


@pytest.mark.e2e
def test_the_images_own_install_steps_alone_make_a_worker_that_runs_a_signed_file(synthesized: Synthesized, tmp_path: Path) -> None:
    """Without Docker: the build stage's COPYs, then its very `pip install` steps in a fresh virtualenv (no dev extras), and
    a worker started from that virtualenv alone processes a file whose message is signed (cryptography is declared)."""
    # Given the build stage replayed: its source, a clean virtualenv, its ENV and its RUN steps that install with pip
    build = stages(parsed())[0]
    src = build_stage_source(synthesized, tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**os.environ, **_build_environment(build), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    # The image disables pip's cache (a layer would keep it); here the cache changes nothing installed, only the downloads.
    env.pop("PIP_NO_CACHE_DIR", None)
    for key in [k for k in env if k.startswith("PYTHON") and k != "PYTHONUNBUFFERED"]:
        env.pop(key)
    steps = [i["value"] for i in build if i["instruction"] == "RUN" and "pip install" in i["value"]]
    assert steps, "the build stage installs dropq with pip"
    for step in steps:
        done = subprocess.run(["bash", "-c", step], cwd=src, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (step, done.stdout[-2000:], done.stderr[-3000:])
    freeze = subprocess.run([str(venv / "bin" / "pip"), "freeze"], capture_output=True, text=True, check=True).stdout
    installed = {line.split("==")[0].split(" @ ")[0].lower() for line in freeze.splitlines()}
    assert {"cryptography", "celery", "kombu", "pycurl"} <= installed, "the image's set, message signing included"
    assert not installed & {"pytest", "moto", "aws-cdk-lib", "playwright", "ruff"}, "no dev extras"

    # When a worker of that virtualenv runs, with message signing on, against the local AWS
    from dropq.ledger import ledger_for
    from dropq.protocol import PROCESS_TASK, build_task_message
    from dropq.settings import local_settings
    from dropq.signing import Signer
    from dropq.topology import TOPOLOGY
    from infra.local.provision import provision
    from infra.local.server import MotoServer, free_port
    from infra.worker import worker_arguments, worker_environment
    from tests.conftest import wait_for_outcome
    from tests.signing_keys import make_identity

    key, cert = make_identity(tmp_path / "trusted", "dropq")
    port = free_port()
    # Signing on as a stack turns it on: the worker reads its keys from a Secrets Manager secret as it starts
    settings = local_settings(port=port, state_dir=str(tmp_path / "state"), signing_secret="dropq/signing")
    server = MotoServer(port, tmp_path / "moto.log")
    server.start()
    pool = TOPOLOGY.pools[0]
    run = tmp_path / "run"  # not the source tree: the worker imports what pip installed
    run.mkdir()
    worker = None
    try:
        provision(settings)
        identity = {"key": key.read_text(), "certificate": cert.read_text()}
        settings.client("secretsmanager").create_secret(Name="dropq/signing", SecretString=json.dumps(identity))
        worker_env = {**env, **settings.environment(), **worker_environment(pool)}
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [str(venv / "bin" / "celery"), *worker_arguments(pool, "image-1@%h")], cwd=run, env=worker_env, stdout=log, stderr=log
        )
        s3 = settings.client("s3")
        etag = s3.put_object(Bucket=settings.bucket, Key="work/image/signed.txt", Body=b"signed, run by the image\n")["ETag"].strip('"')
        kwargs = {"bucket": settings.bucket, "key": "work/image/signed.txt", "etag": etag, "size": 25, "pipeline": "metadata"}
        _, body = build_task_message(PROCESS_TASK, "default", kwargs, signer=Signer.from_files(str(key), str(cert)))
        settings.client("sqs").send_message(QueueUrl=settings.queue_url("default"), MessageBody=body)
        # Then it processes the file, from the installed package
        entry = wait_for_outcome(ledger_for(settings), settings.bucket, "work/image/signed.txt", timeout=120)
        assert entry["state"] == "succeeded", entry.get("reason")
        where = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import tasks; print(tasks.__file__)"], cwd=run, env=env, capture_output=True, text=True
        )
        assert where.stdout.strip().startswith(str(venv)), where
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        server.stop()

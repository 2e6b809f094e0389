"""``python -m infra verify`` after ``pulumi up`` of the dev stack, with a host-run worker and API.

As the demo runs them: the cluster (KWOK) holds the declared objects, a real Redis, worker and
job API run on the host. verify passes; it fails naming the check when a Deployment is scaled to
0 and when the API is down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_kit import ScratchProject, pulumi_run, run

from tests.servers import RedisServer, free_port
from worker import constants as c

pytestmark = pytest.mark.timeout(600)

STACK, NAMESPACE = "dev-v", "preview-dev-v"
TOKEN = "verify-e2e-token-0123456789"


@pytest.fixture(scope="module")
def deployed(scratch_project: ScratchProject) -> Iterator[tuple[Path, dict[str, str]]]:
    project, environ = scratch_project("verify")
    text = (
        (project / "Pulumi.dev.yaml").read_text().replace("namespace: preview-dev", f"namespace: {NAMESPACE}")
    )
    key = "  mobius-preview-worker:worker:\n"
    (project / f"Pulumi.{STACK}.yaml").write_text(text.replace(key, f"{key}    drainSeconds: 1\n"))
    pulumi_run(["stack", "init", STACK], environ, project)
    pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], environ, project)
    for name in ("preview-worker-stable", "preview-worker-api"):
        run(
            ["kubectl", "-n", NAMESPACE, "rollout", "status", f"deployment/{name}", "--timeout=120s"], environ
        )
    yield project, environ
    pulumi_run(["destroy", "--stack", STACK, "--yes"], environ, project)


class HostProcesses:
    """Redis, ``python -m worker run`` and ``python -m worker api`` on loopback ports."""

    def __init__(self, workdir: Path) -> None:
        self.redis = RedisServer(workdir / "redis")
        self.api_port, self.metrics_port = free_port(), free_port()
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            c.ENV_REDIS_URL: self.redis.url,
            c.ENV_DATA_DIR: str(self.workdir / "data"),
            c.ENV_INPUT_ROOT: str(self.workdir / "inputs"),
            c.ENV_API_HOST: "127.0.0.1",
            c.ENV_API_PORT: str(self.api_port),
            c.ENV_METRICS_PORT: str(self.metrics_port),
            c.ENV_API_TOKENS: TOKEN,
        }

    def start(self, which: str) -> None:
        with (self.workdir / f"{which}.log").open("ab") as log:
            self.procs[which] = subprocess.Popen([sys.executable, "-m", "worker", which], env=self.env(),
                                                 stdout=log, stderr=log)  # fmt: skip
        url = self.api if which == "api" else self.worker
        path = c.API_HEALTH_PATH if which == "api" else c.READINESS_PATH
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{which} did not become ready: {(self.workdir / f'{which}.log').read_text()[-2000:]}")

    def stop(self, which: str) -> None:
        proc = self.procs.pop(which)
        proc.terminate()
        proc.wait(timeout=30)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def worker(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcesses]:
    processes = HostProcesses(tmp_path_factory.mktemp("verify-host"))
    for folder in ("inputs", "redis"):
        (processes.workdir / folder).mkdir()
    processes.redis.start()
    processes.start("run")
    processes.start("api")
    yield processes
    for which in list(processes.procs):
        processes.stop(which)
    processes.redis.stop()


def verify(project: Path, environ: dict[str, str], host: HostProcesses) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "infra", "verify", "--stack", STACK, "--api", host.api, "--worker",
            host.worker, "--timeout", "30", "--root", str(project)]  # fmt: skip
    return subprocess.run(argv, env={**environ, "PREVIEW_API_TOKEN": TOKEN}, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def rows(out: str) -> dict[str, str]:
    """check name → ``ok``/``FAIL`` from the printed table."""
    found = {}
    for line in out.splitlines():
        status, _, rest = line.partition("  ")
        if status.strip() in ("ok", "FAIL"):
            found[rest.strip().split("  ")[0]] = status.strip()
    return found


def test_verify_passes_on_a_healthy_deploy(
    deployed: tuple[Path, dict[str, str]], host: HostProcesses
) -> None:
    project, environ = deployed
    done = verify(project, environ, host)
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(done.stdout) == dict.fromkeys(
        ["outputs", "deployments", "objects", "api health", "worker ready", "dry run", "metrics"], "ok"
    )
    assert f"verify --stack {STACK}: all 7 checks passed" in done.stdout


def test_a_deployment_scaled_to_zero_fails_the_deployments_check(
    deployed: tuple[Path, dict[str, str]], host: HostProcesses
) -> None:
    project, environ = deployed
    deployment = ["-n", NAMESPACE, "deployment/preview-worker-stable"]
    replicas = run(["kubectl", "get", *deployment, "-o", "jsonpath={.spec.replicas}"], environ).strip()
    run(["kubectl", "scale", *deployment, "--replicas=0"], environ)
    try:
        time.sleep(2)
        done = verify(project, environ, host)
        assert done.returncode == 1
        assert rows(done.stdout)["deployments"] == "FAIL", done.stdout
        assert "preview-worker-stable: 0/0 pods ready" in done.stdout
        assert f"verify --stack {STACK}: FAILED: deployments" in done.stderr
    finally:  # the HPA owns replicas (the program sets none) and never scales up from 0
        run(["kubectl", "scale", *deployment, f"--replicas={replicas}"], environ)
        run(["kubectl", "rollout", "status", *deployment, "--timeout=120s"], environ)


def test_the_api_down_fails_the_api_checks(
    deployed: tuple[Path, dict[str, str]], host: HostProcesses
) -> None:
    project, environ = deployed
    host.stop("api")
    try:
        done = verify(project, environ, host)
        assert done.returncode == 1
        found = rows(done.stdout)
        assert (found["api health"], found["dry run"], found["metrics"]) == ("FAIL", "FAIL", "FAIL"), (
            done.stdout
        )
        assert found["deployments"] == "ok" and found["worker ready"] == "ok"
        assert "ConnectError" in done.stdout and "not run: api health failed" in done.stdout
    finally:
        host.start("api")


def test_bad_usage_is_exit_2(deployed: tuple[Path, dict[str, str]]) -> None:
    environ = deployed[1]
    argv = [
        sys.executable,
        "-m",
        "infra",
        "verify",
        "--stack",
        STACK,
        "--api",
        "127.0.0.1:1",
        "--worker",
        "x",
    ]
    done = subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "must be an http(s) base URL" in done.stderr


def test_a_wrong_token_fails_the_dry_run(deployed: tuple[Path, dict[str, str]], host: HostProcesses) -> None:
    project, environ = deployed
    argv = [sys.executable, "-m", "infra", "verify", "--stack", STACK, "--api", host.api, "--worker",
            host.worker, "--root", str(project), "--token-env", "NOT_THE_TOKEN"]  # fmt: skip
    done = subprocess.run(argv, env={**environ, "NOT_THE_TOKEN": "x" * 20}, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 1
    assert rows(done.stdout)["dry run"] == "FAIL" and "answered 401" in done.stdout
    assert "x" * 20 not in done.stdout + done.stderr

"""``python -m infra verify`` after ``pulumi up`` of a dev stack, reaching only the job API and Prometheus.

As the demo runs them: the cluster (KWOK) holds the declared objects; a real Redis, two workers
and the job API run on the host, and a real Prometheus scrapes both workers as pods of the
stack's namespace. verify is given the API's and Prometheus' URLs and nothing else: no worker
port. It passes while one worker stays idle (the dry run lands on one of them), and every
failure (a Deployment at 0, a worker target down, a wrong token, unreachable backends) is a
row with its reason and exit 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_kit import ScratchProject, drop_stack, pulumi_run, run

from infra.manifests.common import API_NAME as API
from infra.manifests.common import APP_NAME
from infra.tools.local.addons.prometheus import Prometheus, Target
from tests.servers import RedisServer, free_port
from worker import constants as c

pytestmark = pytest.mark.timeout(600)

STACK, NAMESPACE = "dev-v", "preview-dev-v"
TOKEN = "verify-e2e-token-0123456789"
CHECKS = [
    "cluster",
    "outputs",
    "deployments",
    "objects",
    "api health",
    "queue",
    "targets",
    "dry run",
    "metrics",
]
WORKERS = ("run-a", "run-b")
HOST = "preview-api.dev.example.com"
OTHER_CLUSTER = "00000000-0000-4000-8000-000000000000"
INGRESS = f"    exposure: {{kind: ingress, host: {HOST}, tlsSecret: preview-api-tls, className: nginx}}\n"
ROUTE = (
    f"    exposure: {{kind: httproute, host: {HOST}, "
    "parentRef: {name: public, namespace: gateways, sectionName: https}}\n"
)


@pytest.fixture(scope="module")
def deployed(scratch_project: ScratchProject) -> Iterator[tuple[Path, dict[str, str]]]:
    project, environ = scratch_project("verify")
    text = (
        (project / "Pulumi.dev.yaml").read_text().replace("namespace: preview-dev", f"namespace: {NAMESPACE}")
    )
    key = "  mobius-preview-worker:worker:\n"
    text = text.replace(key, f"{key}    drainSeconds: 1\n")
    api = "  mobius-preview-worker:api:\n"  # the job API reached through an Ingress (api.exposure)
    (project / f"Pulumi.{STACK}.yaml").write_text(text.replace(api, f"{api}{INGRESS}"))
    pulumi_run(["stack", "init", STACK], environ, project)
    pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], environ, project)
    for name in ("preview-worker-stable", "preview-worker-api"):
        run(
            ["kubectl", "-n", NAMESPACE, "rollout", "status", f"deployment/{name}", "--timeout=120s"], environ
        )
    yield project, environ
    drop_stack(project, environ, STACK)


class HostProcesses:
    """Redis, two ``python -m worker run`` and ``python -m worker api`` on loopback ports."""

    def __init__(self, workdir: Path) -> None:
        self.redis = RedisServer(workdir / "redis")
        self.api_port = free_port()
        self.metrics_ports = {name: free_port() for name in WORKERS}
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self, which: str) -> dict[str, str]:
        return {
            **os.environ,
            c.ENV_REDIS_URL: self.redis.url,
            c.ENV_DATA_DIR: str(self.workdir / f"data-{which}"),
            c.ENV_INPUT_ROOT: str(self.workdir / "inputs"),
            c.ENV_API_HOST: "127.0.0.1",
            c.ENV_API_PORT: str(self.api_port),
            c.ENV_METRICS_PORT: str(self.metrics_ports.get(which, free_port())),
            c.ENV_API_TOKENS: TOKEN,
        }

    def start(self, which: str) -> None:
        command = "api" if which == "api" else "run"
        with (self.workdir / f"{which}.log").open("ab") as log:
            self.procs[which] = subprocess.Popen([sys.executable, "-m", "worker", command],
                                                 env=self.env(which), stdout=log, stderr=log)  # fmt: skip
        url = (
            f"{self.api}{c.API_HEALTH_PATH}" if which == "api" else f"{self.worker(which)}{c.READINESS_PATH}"
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
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

    def worker(self, which: str) -> str:
        """A worker's own metrics port: the test reads it, verify is never told it."""
        return f"http://127.0.0.1:{self.metrics_ports[which]}"

    def dry_runs(self, which: str) -> float:
        """The dry-run jobs this one worker finished (its own counter)."""
        text = httpx.get(f"{self.worker(which)}{c.METRICS_PATH}", timeout=5).text
        pattern = rf'^{c.METRIC_JOB_OUTCOMES}\{{[^}}]*{c.LABEL_OUTCOME}="dryrun"[^}}]*\}} (\S+)$'
        return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostProcesses, Prometheus]]:
    processes = HostProcesses(tmp_path_factory.mktemp("verify-host"))
    for folder in ("inputs", "redis"):
        (processes.workdir / folder).mkdir()
    processes.redis.start()
    targets = [Target(port, NAMESPACE, job=APP_NAME) for port in processes.metrics_ports.values()]
    prometheus = Prometheus(processes.workdir / "prometheus", targets, free_port())
    try:
        for which in (*WORKERS, "api"):
            processes.start(which)
        prometheus.start()
        wait_for_targets(prometheus, up=2)
        yield processes, prometheus
    finally:
        prometheus.stop()
        for which in list(processes.procs):
            processes.stop(which)
        processes.redis.stop()


def wait_for_targets(prometheus: Prometheus, up: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = prometheus.query(f'sum(up{{namespace="{NAMESPACE}",job="{APP_NAME}"}})')
        if found and float(str(found[0]["value"][1])) == up:  # type: ignore[index]
            return
        time.sleep(0.5)
    pytest.fail(f"Prometheus did not see {up} worker targets up")


def verify(
    project: Path, environ: dict[str, str], api: str, prometheus: str, *extra: str, **env: str
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "infra", "verify", "--stack", STACK, "--api", api, "--prometheus",
            prometheus, "--timeout", "20", "--root", str(project), *extra]  # fmt: skip
    return subprocess.run(argv, env={**environ, "PREVIEW_API_TOKEN": TOKEN, **env}, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def rows(out: str) -> dict[str, str]:
    """check name → ``ok``/``FAIL`` from the printed table."""
    found = {}
    for line in out.splitlines():
        status, _, rest = line.partition("  ")
        if status.strip() in ("ok", "FAIL"):
            found[rest.strip().split("  ")[0]] = status.strip()
    return found


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {row["check"]: row["status"] for row in doc["checks"]}


def test_verify_passes_through_the_api_and_prometheus_with_one_worker_idle(
    deployed: tuple[Path, dict[str, str]], host: tuple[HostProcesses, Prometheus]
) -> None:
    (project, environ), (processes, prometheus) = deployed, host
    before = {w: processes.dry_runs(w) for w in WORKERS}
    done = verify(project, environ, processes.api, prometheus.url, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["stack"] == STACK and doc["ok"] is True and doc["failed"] == []
    assert statuses(doc) == dict.fromkeys(CHECKS, "ok"), done.stdout
    details = {row["check"]: row["detail"] for row in doc["checks"]}
    assert "2/2 worker targets up" in details["targets"]
    assert "preview-worker-stable 1/1" in details["deployments"]  # ready pods as the API server counts them
    # The dry run landed on one worker; the other stayed idle, and the sum over both still moved.
    moved = {w: processes.dry_runs(w) - before[w] for w in WORKERS}
    assert sorted(moved.values()) == [0, 1], moved
    assert re.search(r"stable (\d+) → (\d+)", details["metrics"]), details["metrics"]
    assert all(str(port) not in done.stdout for port in processes.metrics_ports.values())


def test_unreachable_backends_are_rows_with_reasons(
    deployed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    project, environ = deployed
    closed = f"http://127.0.0.1:{free_port()}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        f"clusters: [{{name: gone, cluster: {{server: 'https://127.0.0.1:{free_port()}'}}}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: u}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    done = verify(project, environ, closed, closed, "--json", KUBECONFIG=str(kubeconfig))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert statuses(doc) == {
        "cluster": "failed", "outputs": "ok", "deployments": "not run", "objects": "not run",
        "api health": "failed", "queue": "not run", "targets": "failed", "dry run": "not run",
        "metrics": "not run",
    }  # fmt: skip
    details = {row["check"]: row["detail"] for row in doc["checks"]}
    assert "kubectl" in details["cluster"] and "exited" in details["cluster"]
    assert f"GET {closed}{c.API_HEALTH_PATH}: cannot connect (ConnectError)" == details["api health"]
    assert f"cannot reach Prometheus at {closed}" in details["targets"]
    assert details["metrics"] == "not run: targets and dry run failed"
    assert doc["failed"] == ["cluster", "deployments", "objects", "api health", "queue", "targets",
                             "dry run", "metrics"]  # fmt: skip
    assert f"verify --stack {STACK}: FAILED: cluster, deployments" in done.stderr


def test_another_cluster_than_the_stacks_fails_the_cluster_check(
    deployed: tuple[Path, dict[str, str]], host: tuple[HostProcesses, Prometheus]
) -> None:
    (project, environ), (processes, prometheus) = deployed, host
    stack_file = project / f"Pulumi.{STACK}.yaml"
    text = stack_file.read_text()
    stack_file.write_text(text.replace("identity: local", f"identity: {OTHER_CLUSTER}"))
    try:
        done = verify(project, environ, processes.api, prometheus.url)
    finally:
        stack_file.write_text(text)
    assert done.returncode == 1
    found = rows(done.stdout)
    assert (found["cluster"], found["deployments"], found["objects"]) == ("FAIL", "FAIL", "FAIL"), done.stdout
    assert f"stack {STACK} is bound to another cluster: expected cluster {OTHER_CLUSTER}" in done.stdout
    assert "not run: cluster failed" in done.stdout and found["dry run"] == "ok"


def test_a_worker_target_down_fails_the_targets_check(
    deployed: tuple[Path, dict[str, str]], host: tuple[HostProcesses, Prometheus]
) -> None:
    (project, environ), (processes, prometheus) = deployed, host
    processes.stop(WORKERS[1])
    try:
        wait_for_targets(prometheus, up=1)
        done = verify(project, environ, processes.api, prometheus.url)
        assert done.returncode == 1, done.stdout + done.stderr
        found = rows(done.stdout)
        assert (found["targets"], found["metrics"]) == ("FAIL", "FAIL"), done.stdout
        assert found["dry run"] == "ok" and found["deployments"] == "ok"  # the other worker took it
        assert "1 of 2 worker targets down" in done.stdout
        assert "not run: targets failed" in done.stdout
    finally:
        processes.start(WORKERS[1])
        wait_for_targets(prometheus, up=2)


def test_a_deployment_scaled_to_zero_fails_the_deployments_check(
    deployed: tuple[Path, dict[str, str]], host: tuple[HostProcesses, Prometheus]
) -> None:
    (project, environ), (processes, prometheus) = deployed, host
    deployment = ["-n", NAMESPACE, "deployment/preview-worker-stable"]
    replicas = run(["kubectl", "get", *deployment, "-o", "jsonpath={.spec.replicas}"], environ).strip()
    run(["kubectl", "scale", *deployment, "--replicas=0"], environ)
    try:
        time.sleep(2)
        done = verify(project, environ, processes.api, prometheus.url)
        assert done.returncode == 1
        assert rows(done.stdout)["deployments"] == "FAIL", done.stdout
        assert "preview-worker-stable: 0/0 pods ready" in done.stdout
        assert f"verify --stack {STACK}: FAILED: deployments" in done.stderr
    finally:  # the HPA owns replicas (the program sets none) and never scales up from 0
        run(["kubectl", "scale", *deployment, f"--replicas={replicas}"], environ)
        run(["kubectl", "rollout", "status", *deployment, "--timeout=120s"], environ)


def test_a_wrong_token_fails_the_api_checks_that_need_it(
    deployed: tuple[Path, dict[str, str]], host: tuple[HostProcesses, Prometheus]
) -> None:
    (project, environ), (processes, prometheus) = deployed, host
    secret = "x" * 20
    done = verify(project, environ, processes.api, prometheus.url, "--token-env", "NOT_THE_TOKEN",
                  NOT_THE_TOKEN=secret)  # fmt: skip
    assert done.returncode == 1
    found = rows(done.stdout)
    assert (found["api health"], found["queue"], found["dry run"]) == ("ok", "FAIL", "FAIL"), done.stdout
    assert "answered 401" in done.stdout and "one of the stack's API tokens" in done.stdout
    assert secret not in done.stdout + done.stderr


def test_the_api_route_is_live_an_ingress_then_an_httproute(deployed: tuple[Path, dict[str, str]]) -> None:
    """``api.exposure`` through the real engine: the Ingress the stack declared, then the same stack
    switched to an HTTPRoute (the Gateway API CRD installed from infra/crds/): one replaces the other."""
    project, environ = deployed
    get = ["kubectl", "-n", NAMESPACE, "get", "-o", "json"]
    ingress = json.loads(run([*get, "ingress", API], environ))["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"hosts": [HOST], "secretName": "preview-api-tls"}]
    (rule,) = ingress["rules"]
    assert rule["host"] == HOST and rule["http"]["paths"] == [
        {"path": c.API_PATH_PREFIX, "pathType": "Prefix",
         "backend": {"service": {"name": API, "port": {"name": c.API_PORT_NAME}}}}
    ]  # fmt: skip
    stack_file = project / f"Pulumi.{STACK}.yaml"
    stack_file.write_text(stack_file.read_text().replace(INGRESS, ROUTE))
    pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], environ, project)
    route = json.loads(run([*get, "httproute.gateway.networking.k8s.io", API], environ))["spec"]
    assert route["hostnames"] == [HOST]
    assert route["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public",
                                    "namespace": "gateways", "sectionName": "https"}]  # fmt: skip
    assert route["rules"][0]["backendRefs"][0]["name"] == API
    assert route["rules"][0]["backendRefs"][0]["port"] == c.API_PORT
    gone = subprocess.run([*get, "ingress", API], env=environ, capture_output=True, text=True, timeout=60)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api", "127.0.0.1:1", "--prometheus", "http://p"], "must be an http(s) URL"),
        (["--api", "http://a"], "the following arguments are required: --prometheus"),
        (
            ["--api", "http://a", "--prometheus", "http://p", "--timeout", "0"],
            "--timeout: must be a positive",
        ),
    ],
)
def test_bad_usage_is_exit_2(args: list[str], message: str) -> None:
    argv = [sys.executable, "-m", "infra", "verify", "--stack", STACK, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr

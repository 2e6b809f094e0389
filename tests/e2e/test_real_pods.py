"""The dev stack on the real node (issue 31): ``pulumi up`` runs the built image, and "Available"
means the worker really started.

One module, one stack (``dev-rp``, a copy of the dev stack in its own namespace and queue), on the
session's real node (conftest.py). Its image is built by ``python -m infra image build`` and
pinned into the stack file as a user would; its secrets (``REDIS_URL``, the S3 credentials, the
API's tokens) come from the session's Vault at deploy time (``secrets.provider: vault``); pods
reach the session's Redis and MinIO on the host at ``HOST_ADDRESS``. The tests run in order and
share that one deployment:

* ``pulumi up`` returns once the pods are Ready by their real probes, on the real node, running
  the pinned digest; the process runs as the declared non-root UID on a read-only root filesystem,
  with the ConfigMap's env (its concurrency is in its own metrics);
* a job POSTed to the in-cluster API (``kubectl port-forward``) is rendered by an in-cluster
  worker and its artifacts land in MinIO;
* ``kubectl delete pod`` during a long render: the pod drains within its grace period and the job
  is handed back, then completed by the replacement, nothing lost;
* a ``REDIS_URL`` the pods cannot reach: the new pods run but are never Ready, the Deployment does
  not roll, and ``pulumi up`` fails within ``readyTimeout`` naming them; the old pods keep serving;
* a ``REDIS_URL`` the worker refuses at start: the containers exit, and ``pulumi up`` fails with
  the pods' reason, where KWOK would have reported success.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_kit import (
    ScratchProject,
    drop_stack,
    kubectl_json,
    on_the_real_node,
    pod_ready,
    port_forward,
    pulumi_run,
    redis_acl_user,
    run,
)
from PIL import Image

from infra.config.model import READY_TIMEOUT_MIN_SECONDS
from infra.manifests.common import API_NAME
from infra.tools.image.registry_server import Registry
from infra.tools.local.cluster import kube
from infra.tools.local.realnode import node
from infra.tools.local.realnode.layout import HOST_ADDRESS, NODE_NAME
from tests.servers import RedisServer, VaultServer
from tests.worker.store_kit import MinioServer
from tests.worker.worker_media import jpeg, slow_pdf
from worker import constants as c

pytestmark = pytest.mark.timeout(900)

STACK, NAMESPACE, QUEUE = "dev-rp", "preview-rp", "rp-jobs"
KV_PATH = "mobius/rp/preview-worker"
REDIS_USER, REDIS_PASSWORD = "rp-worker", "rp-worker-pass-0001"
API_TOKEN = "rp-api-token-0000000000000000000001"
CONCURRENCY = 3  # not the dev stack's 2: the pods must be told this one
WORKER = "preview-worker-stable"
READY_TIMEOUT = "3m"
DRAIN = 3  # the worker's drainSeconds: its pods' grace period is this plus 15 s
# The worker's job lock and stalled check (30 s each by default): a job whose worker the kernel
# killed goes back to the queue once its lock expires, at the next stalled check. Shorter here so
# the OOM test waits seconds, not a minute; the lock is still renewed every 5 s by a live worker.
LOCK_MS, STALLED_INTERVAL_MS = 10_000, 5_000
# The refused setting's `up` fails after readyTimeout: the setting's minimum, 30 s (infra/config).
REFUSED_READY_TIMEOUT = f"{READY_TIMEOUT_MIN_SECONDS}s"


def _stack_file(text: str, image: str, bucket: str, minio: MinioServer, redis_port: int) -> str:
    """The dev stack's text for the real node: its own namespace and queue, secrets from Vault,
    the session's MinIO as the store, and every pod scheduled on the real node."""
    text = text.replace("namespace: preview-dev", f"namespace: {NAMESPACE}")
    text = text.replace("queueName: preview-jobs", f"queueName: {QUEUE}")
    text = text.replace(
        "    concurrency: 2\n",
        f"    concurrency: {CONCURRENCY}\n    drainSeconds: {DRAIN}\n"
        f"    lockMs: {LOCK_MS}\n    stalledIntervalMs: {STALLED_INTERVAL_MS}\n",
    )
    text = re.sub(r"(mobius-preview-worker:image: )\S+", rf"\g<1>{image}", text)
    # Room for the long render's 2400-px page (the render budget is the limit's share, worker.render).
    limits = "    limits: {cpu: 500m, memory: 256Mi}\n"
    assert limits in text
    text = text.replace(limits, "    limits: {cpu: 500m, memory: 512Mi}\n", 1)
    text, dropped = re.subn(r"  mobius-preview-worker:redisUrl:\n    secure: \S+\n", "", text)
    assert dropped == 1
    secrets = re.search(r"  mobius-preview-worker:secrets:\n(?:    .*\n|      .*\n)+", text)
    assert secrets is not None
    text = text.replace(secrets.group(0), (
        "  mobius-preview-worker:secrets:\n    provider: vault\n"
        f"    path: {KV_PATH}\n    keys:\n"
        "      AWS_ACCESS_KEY_ID: s3_access_key_id\n      AWS_SECRET_ACCESS_KEY: s3_secret_access_key\n"
        "      PREVIEW_API_TOKENS: api_tokens\n      REDIS_URL: redis_url\n"
    ))  # fmt: skip
    artifacts = re.search(r"  mobius-preview-worker:artifacts:\n(?:    .*\n)+", text)
    assert artifacts is not None
    text = text.replace(artifacts.group(0), (
        f"  mobius-preview-worker:artifacts:\n    store: s3\n    bucket: {bucket}\n"
        f"    endpoint: http://{HOST_ADDRESS}:{minio.port}\n    publicEndpoint: {minio.endpoint}\n"
    ))  # fmt: skip
    network = re.search(r"  mobius-preview-worker:network:\n(?:    .*\n)+", text)
    assert network is not None
    text = text.replace(network.group(0), (  # the host's address is the peer of both
        f"  mobius-preview-worker:network:\n    redisNamespace: null\n    redisCidrs: ['{HOST_ADDRESS}/32']\n"
        f"    redisPort: {redis_port}\n    s3Cidrs: ['{HOST_ADDRESS}/32']\n    s3Port: {minio.port}\n"
    ))  # fmt: skip
    return text + on_the_real_node(READY_TIMEOUT)


def _redis_user(redis_server: RedisServer) -> str:
    """The pods' Redis user; its URL."""
    return redis_acl_user(redis_server.client(), redis_server.port, REDIS_USER, REDIS_PASSWORD)


class Deployed:
    """The deployed stack: where it is and how to talk to it."""

    def __init__(self, project: Path, environ: dict[str, str], vault: VaultServer, values: dict[str, str]):
        self.project, self.environ, self.vault, self.values = project, environ, vault, values

    def kubectl(self, *args: str, timeout: float = 120) -> str:
        return run(["kubectl", "-n", NAMESPACE, *args], self.environ, timeout=timeout)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = kubectl_json(
            self.environ, "-n", NAMESPACE, "get", "pods", "-l", selector
        )["items"]
        return items

    def set_vault(self, **changes: str) -> None:
        self.values.update(changes)
        self.vault.client().secrets.kv.v2.create_or_update_secret(path=KV_PATH, secret=self.values)

    def up(self, expect_fail: bool = False, timeout: float = 600) -> str:
        return pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], self.environ, self.project,
                          expect_fail=expect_fail, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def deployed(
    scratch_project: ScratchProject,
    real_node: node.RealNode,
    worker_image: str,
    vault_server: VaultServer,
    redis_server: RedisServer,
    minio: MinioServer,
) -> Iterator[Deployed]:
    project, environ = scratch_project("real-pods")
    environ = {**environ, "VAULT_ADDR": vault_server.url, "VAULT_TOKEN": "root-token-for-tests"}
    redis_url = _redis_user(redis_server)
    bucket = minio.new_bucket()
    values = {
        "s3_access_key_id": minio.access_key,
        "s3_secret_access_key": minio.secret_key,
        "api_tokens": API_TOKEN,
        "redis_url": f"{redis_url}/0",
    }
    dev = (project / "Pulumi.dev.yaml").read_text()
    (project / f"Pulumi.{STACK}.yaml").write_text(
        _stack_file(dev, worker_image, bucket, minio, redis_server.port)
    )
    deployed = Deployed(project, environ, vault_server, values)
    deployed.set_vault()
    pulumi_run(["stack", "init", STACK], environ, project)
    try:
        yield deployed
    finally:
        drop_stack(project, environ, STACK)


def wait_until(check: Any, what: str, timeout: float, on_fail: Any = lambda: "") -> float:
    """:func:`kube.wait_until`, with nothing more to say by default."""
    return kube.wait_until(check, what, timeout, on_fail)


@pytest.fixture(scope="module")
def first_up(deployed: Deployed) -> str:
    started = time.monotonic()
    out = deployed.up()
    print(f"first pulumi up with real pods: {time.monotonic() - started:.0f}s")
    return out


def test_up_returns_once_the_pods_are_ready_by_their_probes_on_the_real_node(
    deployed: Deployed, first_up: str
) -> None:
    image = re.search(
        r"mobius-preview-worker:image: (\S+)", (deployed.project / f"Pulumi.{STACK}.yaml").read_text()
    )
    assert image is not None
    digest = image.group(1).split("@")[1]
    for selector in ("app.kubernetes.io/component=worker", "app.kubernetes.io/component=api"):
        pods = deployed.pods(selector)
        assert pods, selector
        for pod in pods:  # Ready the moment `up` returned: the engine waited for the real probes
            assert pod["spec"]["nodeName"] == NODE_NAME, pod["metadata"]["name"]
            assert pod_ready(pod), pod["status"]
            (status,) = pod["status"]["containerStatuses"]
            assert status["imageID"].endswith(digest) and status["restartCount"] == 0, status
    for deployment in kubectl_json(deployed.environ, "-n", NAMESPACE, "get", "deployments")["items"]:
        conditions = {x["type"]: x["status"] for x in deployment["status"]["conditions"]}
        assert conditions["Available"] == "True", deployment["metadata"]["name"]


def _exec_python(deployed: Deployed, pod: str, code: str) -> str:
    return deployed.kubectl("exec", pod, "--", "python", "-c", code)


def test_the_process_is_non_root_on_a_read_only_root_with_the_configmaps_env(
    deployed: Deployed, first_up: str
) -> None:
    pod = deployed.pods("app.kubernetes.io/component=worker")[0]
    name, spec = pod["metadata"]["name"], pod["spec"]
    declared_uid = spec["securityContext"]["runAsUser"]
    assert declared_uid != 0
    probe = (
        "import os, urllib.request\n"
        "print(os.getuid(), os.getgid())\n"
        "try:\n    open('/written-by-the-test', 'w')\nexcept OSError as e:\n    print('write:', e.errno)\n"
        f"print(urllib.request.urlopen('http://127.0.0.1:{c.METRICS_PORT}{c.METRICS_PATH}').read().decode())\n"
    )
    out = _exec_python(deployed, name, probe)
    uid, gid = map(int, out.splitlines()[0].split())
    assert (uid, gid) == (declared_uid, spec["securityContext"]["runAsGroup"]) and uid != 0
    assert "write: 30" in out  # EROFS: the root filesystem is read-only
    concurrency = re.search(rf"^{c.METRIC_CONCURRENCY}{{[^}}]*}} (\S+)$", out, re.M)
    assert concurrency is not None and float(concurrency.group(1)) == CONCURRENCY, out[-2000:]


def _post(base: str, job: dict[str, Any]) -> str:
    answer = httpx.post(
        f"{base}/api/preview/job", json=job, timeout=10, headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["jobId"])


def _state(base: str, job_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{base}/api/preview/job/{job_id}/status", timeout=5,
                       headers={"Authorization": f"Bearer {API_TOKEN}"})  # fmt: skip
    found: dict[str, Any] = answer.json()
    return found


def _job(job_id: str, content: bytes, fmt: str = "webp") -> dict[str, Any]:
    return {
        "jobId": job_id,
        "source": {"inline": base64.b64encode(content).decode()},
        "outputs": [{"name": "thumb", "format": fmt, "width": 320, "height": 320, "fit": "contain"}],
    }


def test_a_job_through_the_in_cluster_api_is_rendered_by_an_in_cluster_worker(
    deployed: Deployed, first_up: str, minio: MinioServer
) -> None:

    with port_forward(deployed.environ, NAMESPACE, f"service/{API_NAME}", c.API_PORT) as base:
        job_id = _post(base, _job("rp-first", jpeg(1600, 1200)))
        wait_until(lambda: _state(base, job_id).get("state") == "completed", f"job {job_id}", 60,
                   lambda: json.dumps(_state(base, job_id)))  # fmt: skip
    bucket = re.search(r"bucket: (\S+)", (deployed.project / f"Pulumi.{STACK}.yaml").read_text())
    assert bucket is not None
    assert [k for k in minio.keys(bucket.group(1)) if job_id in k], minio.keys(bucket.group(1))
    # Only the real pods consume this stack's queue: one of them counted the job.
    counted = 0.0
    for pod in deployed.pods("app.kubernetes.io/component=worker"):
        out = _exec_python(deployed, pod["metadata"]["name"], (
            "import urllib.request\n"
            f"print(urllib.request.urlopen('http://127.0.0.1:{c.METRICS_PORT}{c.METRICS_PATH}').read().decode())"
        ))  # fmt: skip
        for line in out.splitlines():
            if line.startswith(c.METRIC_JOB_OUTCOMES) and 'outcome="completed"' in line:
                counted += float(line.rsplit(" ", 1)[1])
    assert counted >= 1


def _worker_pods(deployed: Deployed) -> list[dict[str, Any]]:
    return [
        p
        for p in deployed.pods("app.kubernetes.io/component=worker")
        if "deletionTimestamp" not in p["metadata"]
    ]


def test_delete_pod_during_a_long_render_drains_within_the_grace_and_loses_nothing(
    deployed: Deployed, first_up: str, redis_server: RedisServer
) -> None:
    (pod,) = _worker_pods(deployed)
    name, grace = pod["metadata"]["name"], pod["spec"]["terminationGracePeriodSeconds"]
    long_render = {
        "jobId": "rp-long",
        "source": {"inline": base64.b64encode(slow_pdf(12_000)).decode()},  # under the inline cap
        "outputs": [{"name": "page", "format": "png", "width": 2400, "height": 2400}],  # seconds of PDFium
    }
    client = redis_server.client()
    with port_forward(deployed.environ, NAMESPACE, f"service/{API_NAME}", c.API_PORT) as base:
        job_id = _post(base, long_render)
        wait_until(lambda: _state(base, job_id).get("state") == "active", "the long render to start", 60)
        time.sleep(1.0)  # well into PDFium's seconds of work
        started = time.monotonic()
        deployed.kubectl("delete", "pod", name, "--wait=true", timeout=grace + 30)
        took = time.monotonic() - started
        # The drain (drainSeconds) ended it and the process exited by itself: a SIGKILL at the end of
        # the grace period would have taken the whole of it.
        assert took < grace - 5, f"{name} took {took:.1f}s of its {grace}s grace"
        # Handed back, not failed: the replacement pod renders it to the end, charged no attempt.
        wait_until(lambda: _state(base, job_id).get("state") == "completed", f"job {job_id}", 180,
                   lambda: json.dumps(_state(base, job_id)))  # fmt: skip
    job = client.hgetall(f"bull:{QUEUE}:{job_id}")
    assert job and not job.get("failedReason"), job
    dlq = client.keys(f"bull:{QUEUE}{c.DLQ_SUFFIX}:*")
    assert [k for k in dlq if k.rsplit(":", 1)[1] not in ("events", "meta", "id")] == [], dlq  # no entry


def test_a_worker_that_cannot_reach_redis_is_not_ready_and_the_deployment_not_available(
    deployed: Deployed, first_up: str, redis_server: RedisServer
) -> None:
    def worker() -> tuple[bool, str]:
        (pod,) = _worker_pods(deployed)
        found = kubectl_json(deployed.environ, "-n", NAMESPACE, "get", "deployment", WORKER)
        available = {x["type"]: x["status"] for x in found["status"]["conditions"]}["Available"]
        return pod_ready(pod), available

    assert worker() == (True, "True")
    redis_server.stop()
    try:
        wait_until(lambda: worker() == (False, "False"), "the worker pod to turn not Ready", 60)
        (pod,) = _worker_pods(deployed)
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0  # alive: liveness stays green
    finally:
        redis_server.start()
        _redis_user(redis_server)
    wait_until(lambda: worker() == (True, "True"), "the worker pod to be Ready again", 60)


def _set_ready_timeout(deployed: Deployed, value: str) -> None:
    stack = deployed.project / f"Pulumi.{STACK}.yaml"
    text = stack.read_text()
    stack.write_text(re.sub(r"(mobius-preview-worker:readyTimeout: )\S+", rf"\g<1>{value}", text))


def test_a_setting_the_worker_refuses_at_start_fails_up_with_the_pods_reason(
    deployed: Deployed, first_up: str
) -> None:
    """A REDIS_URL that is no Redis URL: every new container exits at start (exit 2, the error naming
    the key). ``pulumi up`` fails within ``readyTimeout`` saying why; the old pods keep serving."""
    good = deployed.values["redis_url"]
    before = {p["metadata"]["name"] for p in _worker_pods(deployed)}
    deployed.set_vault(redis_url="http://not-a-redis-url.invalid:6379")
    _set_ready_timeout(deployed, REFUSED_READY_TIMEOUT)
    try:
        out = deployed.up(expect_fail=True)
        assert re.search(r"CrashLoopBackOff|exited with code 2|Error", out), out[-3000:]
        assert "not-a-redis-url" not in out  # the value is a secret: never in the output
        assert "timed out waiting" in out or "failed" in out.lower(), out[-3000:]
        new = [p for p in _worker_pods(deployed) if p["metadata"]["name"] not in before]
        assert new, "the rollout made no new pod"
        for pod in new:
            assert not pod_ready(pod)
            (status,) = pod["status"]["containerStatuses"]
            terminated = status.get("lastState", {}).get("terminated") or status["state"].get("terminated")
            assert terminated and terminated["exitCode"] == 2, status
        logs = deployed.kubectl("logs", new[0]["metadata"]["name"], "--previous")
        assert c.ENV_REDIS_URL in logs and "not-a-redis-url" not in logs, logs[-2000:]
        # maxUnavailable 0: the old pods were never taken down, and they still serve.
        old = [p for p in _worker_pods(deployed) if p["metadata"]["name"] in before]
        assert old and all(pod_ready(p) for p in old)
    finally:
        deployed.set_vault(redis_url=good)
        _set_ready_timeout(deployed, READY_TIMEOUT)
    deployed.up()
    assert all(pod_ready(p) for p in _worker_pods(deployed))


def test_release_pin_apply_rolls_the_real_pods_to_the_new_digest_within_the_pdb(
    deployed: Deployed, first_up: str, e2e_registry: Registry, worker_image_inputs: list[str]
) -> None:
    stack = deployed.project / f"Pulumi.{STACK}.yaml"
    old = re.search(r"mobius-preview-worker:image: (\S+)", stack.read_text())
    assert old is not None
    infra = [sys.executable, "-m", "infra"]
    # The same code under another revision label: another digest, built from the layer cache.
    built = run([*infra, "image", "build", *worker_image_inputs, "--revision", "1" * 40], deployed.environ,
                timeout=900)  # fmt: skip
    new = built.strip().splitlines()[-1]
    assert new != old.group(1) and new.startswith(f"{e2e_registry.host}/mobius/preview-worker@sha256:")
    samples: list[tuple[int, int]] = []  # (Ready worker pods, the PDB's currentHealthy - desiredHealthy)
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.5):
            ready = sum(1 for p in deployed.pods("app.kubernetes.io/component=worker") if pod_ready(p))
            pdb = kubectl_json(deployed.environ, "-n", NAMESPACE, "get", "pdb", "preview-worker")["status"]
            samples.append((ready, pdb["currentHealthy"] - pdb["desiredHealthy"]))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        pin = [*infra, "release", "--root", str(deployed.project), "pin", "--stack", STACK, "--image", new,
               "--reason", "e2e: roll the real pods", "--apply", "--no-git"]  # fmt: skip
        run(pin, deployed.environ, timeout=600)
    finally:
        stop.set()
        watcher.join(10)
    digest = new.split("@")[1]

    def rolled() -> bool:
        live = [p for p in deployed.pods("app.kubernetes.io/component in (worker,api)")
                if "deletionTimestamp" not in p["metadata"]]  # fmt: skip
        return bool(live) and all(
            p["status"]["containerStatuses"][0]["imageID"].endswith(digest) and pod_ready(p) for p in live
        )

    # Every pod runs the new digest; Ready again (a readiness probe may miss a beat on a busy node).
    wait_until(rolled, "every pod on the new digest and Ready", 60)
    assert samples, "the rollout was never sampled"
    assert min(ready for ready, _ in samples) >= 1, samples  # maxUnavailable 0: never below capacity
    assert min(margin for _, margin in samples) >= 0, samples  # the PDB's budget was never overdrawn
    history = (deployed.project / "releases" / f"{STACK}.jsonl").read_text().splitlines()
    last = json.loads(history[-1])
    assert (last["action"], last["before"]["image"], last["after"]["image"]) == ("pin", old.group(1), new)


def _container_cgroup(pod: dict[str, Any], real_node: node.RealNode) -> Path:
    """The worker container's memory cgroup on this host (cgroup v1), from its init process."""
    container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    tasks = dict(line.split()[:2] for line in real_node.ctr("tasks", "ls").splitlines()[1:] if line.strip())
    lines = Path(f"/proc/{tasks[container_id]}/cgroup").read_text().splitlines()
    (path,) = [ln.split(":", 2)[2] for ln in lines if ln.split(":", 2)[1] == "memory"]
    return Path("/sys/fs/cgroup/memory") / path.lstrip("/")


def test_a_render_over_the_memory_limit_is_oom_killed_by_the_kernel_and_the_job_is_retried(
    deployed: Deployed, first_up: str, redis_server: RedisServer, real_node: node.RealNode
) -> None:
    """Item 4: the pod's memory limit is the kernel's, on the container's own cgroup.

    The stack's limit is enforced as declared (read inside the container). A render cannot exceed it
    by design (each render process's RLIMIT_DATA is its share of the limit, worker/render/limits.py),
    so to get there the test lowers the running container's cgroup limit to a little over what it
    uses once warm, as a leak or a bad estimate would leave it. The 4000x4000 PNG's decode then runs
    the cgroup out of memory and the kernel OOM-kills the largest process in it: in this burstable
    pod every process has the same ``oom_score_adj`` (995), so that is the worker, not the render.
    The container is restarted (``OOMKilled``) with its declared limit, BullMQ's stalled-job check
    hands the job to the new process, and it completes. Nothing is lost.
    """
    (pod,) = _worker_pods(deployed)
    name, restarts = pod["metadata"]["name"], pod["status"]["containerStatuses"][0]["restartCount"]
    declared = pod["spec"]["containers"][0]["resources"]["limits"]["memory"]
    seen = _exec_python(deployed, name, "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read())")
    assert int(seen) == 512 * 2**20 and declared == "512Mi", (seen, declared)
    cgroup = _container_cgroup(pod, real_node)
    image = Image.new("RGB", (4000, 4000), (200, 30, 30))  # 64 MB decoded, under the render budget
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)

    def status() -> dict[str, Any]:
        (now,) = _worker_pods(deployed)
        found: dict[str, Any] = now["status"]["containerStatuses"][0]
        return found

    with port_forward(deployed.environ, NAMESPACE, f"service/{API_NAME}", c.API_PORT) as base:
        # A small job first: the render process is started and warm before the limit is lowered.
        warm = _post(base, _job("rp-oom-warm", jpeg(64, 48)))
        wait_until(lambda: _state(base, warm).get("state") == "completed", "the warm-up job", 60)
        usage = int((cgroup / "memory.usage_in_bytes").read_text())
        (cgroup / "memory.limit_in_bytes").write_text(str(usage + 24 * 2**20))
        try:
            job_id = _post(base, _job("rp-oom", buf.getvalue()))
            wait_until(lambda: status()["restartCount"] > restarts, "the container's OOM kill", 90,
                       lambda: json.dumps(_state(base, job_id)))  # fmt: skip
        finally:
            if cgroup.exists():  # the container survived: its limit back as declared
                (cgroup / "memory.limit_in_bytes").write_text(str(512 * 2**20))
    terminated = status()["lastState"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137), terminated
    assert not cgroup.exists()  # the new container has a cgroup of its own, at the declared limit
    with port_forward(deployed.environ, NAMESPACE, f"service/{API_NAME}", c.API_PORT) as base:
        wait_until(lambda: _state(base, job_id).get("state") == "completed", f"job {job_id}", 180,
                   lambda: json.dumps(_state(base, job_id)))  # fmt: skip
    job = redis_server.client().hgetall(f"bull:{QUEUE}:{job_id}")
    assert not job.get("failedReason"), job  # handed on by the stalled check, not failed

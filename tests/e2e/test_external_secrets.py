"""Secrets from Vault, synced by the real External Secrets Operator into the local cluster.

Vault is a real dev server on loopback with its Kubernetes auth method configured against
the local API server (TokenReview through a reviewer ServiceAccount, as on a real cluster).
The operator is the built ``external-secrets`` add-on running on the host. The dev stack (as
``dev-s``) declares its own SecretStore with ``secrets.store``; after ``pulumi up`` the Secret
must hold Vault's values, none of which may be in Pulumi's state, and a host worker started
with that Secret's env must accept the job API token that came from Vault.

Rotation: the pods mount that Secret as files (``PREVIEW_SECRETS_DIR``). A host API and a
host worker read a folder the test keeps in step with the Secret the way the kubelet keeps
a Secret volume (this machine runs no kubelet: KWOK's pods run no containers). After the
token changes in Vault, within ``refreshInterval`` plus a sync the API accepts the new token
and refuses the old one, and every job queued before and during the rotation completes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bullmq import Queue
from e2e_kit import ScratchProject, kubectl_json, pod_ready, port_forward, pulumi_run, run

from bench.run_suite import tiny_png
from bench.worker_proc import spawn, worker_env
from infra.manifests.secret_sources import STORE_SERVICE_ACCOUNT, VAULT_SECRET_NAME
from infra.tools.local.addons.secrets_operator import SecretsOperator
from infra.tools.local.cluster import control_plane
from infra.tools.local.cluster.kube import wait_until
from infra.tools.local.layout import APISERVER_PORT, HOST
from infra.tools.local.realnode import node
from infra.tools.local.realnode.layout import HOST_ADDRESS, NODE_LABEL, NODE_TAINT
from tests.servers import (  # `redis_server` and `vault_server` are the session's (conftest.py)
    RedisServer,
    VaultServer,
    bearer_status,
    free_port,
    project_secret,
)
from worker import constants as c

pytestmark = pytest.mark.timeout(600)

STACK, NAMESPACE = "dev-s", "preview-dev-s"
KV_PATH = "mobius/dev/preview-worker"  # Pulumi.dev.yaml's secrets.path
ROLE, AUTH_MOUNT, POLICY = "preview-worker", "kubernetes", "preview-worker-read"
REFRESH = "2s"
VALUES = {
    "s3_access_key_id": "AKIAESOSYNCED0001",
    "s3_secret_access_key": "eso-synced-s3-secret-0001",
    "api_tokens": "eso-synced-api-token-000000000001",
}
ENV_OF = {
    "AWS_ACCESS_KEY_ID": "s3_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "s3_secret_access_key",
    "PREVIEW_API_TOKENS": "api_tokens",
    "REDIS_URL": "redis_url",
}
#: Redis ACL users whose URLs Vault holds: the stack's REDIS_URL comes from Vault, and rotates.
REDIS_CA_CONFIG_MAP = "redis-ca"
REDIS_USERS = {"eso-redis-a": "eso-redis-pass-a-0001", "eso-redis-b": "eso-redis-pass-b-0002"}


def redis_user(redis_server: RedisServer, user: str) -> str:
    """Create (or re-create) ``user`` on the shared Redis; return its URL."""
    password = REDIS_USERS[user]
    redis_server.client().execute_command(
        "ACL", "SETUSER", user, "reset", "on", f">{password}", "~*", "&*", "+@all"
    )
    # The host's address on the real node's link (conftest.py's `real_node` relays the port there):
    # the pods and the host processes below use the same URL.
    return f"redis://{user}:{password}@{HOST_ADDRESS}:{redis_server.port}"


def configure_vault(vault: VaultServer, environ: dict[str, str], ca_pem: str, values: dict[str, str]) -> None:
    """What a platform team does once per cluster: Vault's Kubernetes auth, a policy and a role.

    Vault checks each login's ServiceAccount token with a TokenReview, made as a reviewer
    ServiceAccount bound to ``system:auth-delegator``; the role admits only the stack's own
    store identity in the stack's namespace, and its policy reads only the stack's path.
    """
    run(["kubectl", "create", "namespace", "vault-auth"], environ)
    run(["kubectl", "-n", "vault-auth", "create", "serviceaccount", "token-reviewer"], environ)
    run(
        [
            "kubectl",
            "create",
            "clusterrolebinding",
            "vault-token-reviewer",
            "--clusterrole=system:auth-delegator",
            "--serviceaccount=vault-auth:token-reviewer",
        ],
        environ,
    )
    reviewer = run(
        ["kubectl", "-n", "vault-auth", "create", "token", "token-reviewer", "--duration=2h"], environ
    )
    root = vault.client()
    root.sys.enable_auth_method("kubernetes", path=AUTH_MOUNT)
    root.auth.kubernetes.configure(
        kubernetes_host=f"https://{HOST}:{APISERVER_PORT}",
        kubernetes_ca_cert=ca_pem,
        token_reviewer_jwt=reviewer.strip(),
        disable_local_ca_jwt=True,
        mount_point=AUTH_MOUNT,
    )
    root.sys.create_or_update_policy(POLICY, f'path "secret/data/{KV_PATH}" {{ capabilities = ["read"] }}')
    root.auth.kubernetes.create_role(
        ROLE,
        bound_service_account_names=[STORE_SERVICE_ACCOUNT],
        bound_service_account_namespaces=[NAMESPACE],
        policies=[POLICY],
        ttl="10m",
        mount_point=AUTH_MOUNT,
    )
    root.secrets.kv.v2.create_or_update_secret(path=KV_PATH, secret=values)


def stack_file(text: str, vault_url: str, image: str) -> str:
    text = text.replace("namespace: preview-dev", f"namespace: {NAMESPACE}")
    text = re.sub(r"(mobius-preview-worker:image: )\S+", rf"\g<1>{image}", text)
    store = (
        "    storeKind: SecretStore\n"
        f"    refreshInterval: {REFRESH}\n"
        f"    store: {{server: '{vault_url}', authMount: {AUTH_MOUNT}, role: {ROLE}}}\n"
    )
    anchor = "    provider: external-secrets\n"
    assert anchor in text
    text = text.replace(anchor, anchor + store, 1)
    # REDIS_URL from Vault as well, instead of the stack's own redisUrl (exactly one source).
    keys = "      PREVIEW_API_TOKENS: api_tokens   # the job API's bearer tokens, comma-separated\n"
    assert keys in text
    text = text.replace(keys, keys + "      REDIS_URL: redis_url\n", 1)
    text, dropped = re.subn(r"  mobius-preview-worker:redisUrl:\n    secure: \S+\n", "", text)
    assert dropped == 1
    # A Redis behind TLS from a private CA: the pods mount that CA where REDIS_URL can name it.
    text += f"  mobius-preview-worker:redisCa:\n    configMap: {REDIS_CA_CONFIG_MAP}\n"
    key, value, effect = NODE_TAINT  # real pods: the kubelet mounts the operator's Secret as files
    return text + (
        "  mobius-preview-worker:readyTimeout: 3m\n"
        "  mobius-preview-worker:scheduling:\n"
        f"    nodeSelector: {{{NODE_LABEL[0]}: {NODE_LABEL[1]}}}\n"
        f"    tolerations: [{{key: {key}, operator: Equal, value: '{value}', effect: {effect}}}]\n"
    )


def synced(environ: dict[str, str]) -> dict[str, str]:
    """The operator's Secret, decoded (empty while it does not exist yet)."""
    found = subprocess.run(
        ["kubectl", "-n", NAMESPACE, "get", "secret", VAULT_SECRET_NAME, "-o", "json"],
        env=environ,
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        return {}
    data: dict[str, str] = json.loads(found.stdout).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


@pytest.fixture(scope="module")
def deployed(
    scratch_project: ScratchProject,
    local_cluster: control_plane.Cluster,
    vault_server: VaultServer,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    real_node: node.RealNode,
    worker_image: str,
) -> Iterator[tuple[Path, dict[str, str], SecretsOperator]]:
    project, environ = scratch_project("external-secrets")
    VALUES["redis_url"] = redis_user(redis_server, "eso-redis-a")
    configure_vault(vault_server, environ, local_cluster.pki.ca_cert.read_text(), VALUES)
    operator = SecretsOperator(local_cluster, tmp_path_factory.mktemp("eso"), free_port()).start()
    try:
        text = stack_file((project / "Pulumi.dev.yaml").read_text(), vault_server.url, worker_image)
        (project / f"Pulumi.{STACK}.yaml").write_text(text)
        run(["kubectl", "create", "namespace", NAMESPACE], environ)
        ca = f"--from-file=ca.crt={local_cluster.pki.ca_cert}"
        run(["kubectl", "-n", NAMESPACE, "create", "configmap", REDIS_CA_CONFIG_MAP, ca], environ)
        pulumi_run(["stack", "init", STACK], environ, project)
        pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], environ, project)
        yield project, environ, operator
        pulumi_run(["destroy", "--stack", STACK, "--yes"], environ, project)
    finally:
        operator.stop()


def wait_synced(environ: dict[str, str], operator: SecretsOperator, want: dict[str, str]) -> float:
    def status() -> str:
        found = subprocess.run(
            ["kubectl", "-n", NAMESPACE, "get", "externalsecret,secretstore", "-o", "json"],
            env=environ,
            capture_output=True,
            text=True,
        )
        return f"{found.stdout[-3000:]}\n{operator.log_tail()}"

    return wait_until(lambda: synced(environ) == want, "the operator's Secret", 90, status)


def test_pulumi_up_syncs_vaults_values_and_never_holds_them(
    deployed: tuple[Path, dict[str, str], SecretsOperator],
) -> None:
    project, environ, operator = deployed
    wait_synced(environ, operator, {env: VALUES[prop] for env, prop in ENV_OF.items()})
    store = kubectl_json(environ, "-n", NAMESPACE, "get", "secretstore", "vault")
    assert [(k["type"], k["status"]) for k in store["status"]["conditions"]] == [("Ready", "True")]
    secret = kubectl_json(environ, "-n", NAMESPACE, "get", "secret", VAULT_SECRET_NAME)
    (owner,) = secret["metadata"]["ownerReferences"]  # the ExternalSecret owns it (creationPolicy Owner)
    assert (owner["kind"], owner["name"]) == ("ExternalSecret", VAULT_SECRET_NAME)
    state = run(["pulumi", "stack", "export", "--stack", STACK, "--show-secrets"], environ, project)
    for value in VALUES.values():
        assert value not in state  # the values went Vault → operator → Secret, never through Pulumi


def stopped(process: subprocess.Popen[str], log: Path) -> None:
    """SIGTERM ``process`` and wait; one still running after 30 s is killed (so it cannot hold
    its Redis user into the next test) and fails the test with its log's tail."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"still running 30 s after SIGTERM; its log ends:\n{log.read_text()[-3000:]}")


def test_a_worker_started_from_the_synced_secret_uses_vaults_token(
    deployed: tuple[Path, dict[str, str], SecretsOperator],
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    _, environ, operator = deployed
    env_from_secret = wait_and_read(environ, operator)
    port = free_port()
    env: dict[str, Any] = worker_env(
        redis_server.url, "eso-q", str(tmp_path), api_port=port, api_auth="tokens"
    )
    env.update(env_from_secret)
    log = tmp_path / "api.log"
    api = spawn(env, command="api", log=log)
    try:
        url = f"http://127.0.0.1:{port}/api/preview/queue/metrics"
        wait_until(lambda: bearer_status(url, "none") != 0, "the job API", 30, lambda: f"exit {api.poll()}")
        assert httpx.get(url, timeout=5).status_code == 401
        token = {"Authorization": f"Bearer {VALUES['api_tokens']}"}
        assert httpx.get(url, headers=token, timeout=5).status_code == 200
    finally:
        stopped(api, log)


def test_the_pods_mount_the_synced_secret_as_files(
    deployed: tuple[Path, dict[str, str], SecretsOperator],
) -> None:
    _, environ, _ = deployed
    for name in ("preview-worker-stable", "preview-worker-api"):
        spec = kubectl_json(environ, "-n", NAMESPACE, "get", "deployment", name)["spec"]["template"]["spec"]
        (volume,) = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == VAULT_SECRET_NAME]
        (box,) = spec["containers"]
        (mount,) = [m for m in box["volumeMounts"] if m["name"] == volume["name"]]
        assert {"name": c.ENV_SECRETS_DIR, "value": mount["mountPath"]} in box["env"]
        assert {"secretRef": {"name": VAULT_SECRET_NAME}} not in box["envFrom"]
        (ca,) = [v for v in spec["volumes"] if v.get("configMap", {}).get("name") == REDIS_CA_CONFIG_MAP]
        (ca_mount,) = [m for m in box["volumeMounts"] if m["name"] == ca["name"]]
        assert f"{ca_mount['mountPath']}/{ca['configMap']['items'][0]['path']}" == c.REDIS_CA_PATH
        assert ca_mount["readOnly"] is True


class Kubelet:
    """Keeps ``folder`` in step with the operator's Secret, as the kubelet syncs a Secret volume."""

    def __init__(self, environ: dict[str, str], folder: Path, every: float = 1.0) -> None:
        self.environ, self.folder, self.every = environ, folder, every
        self.last: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sync(self) -> None:
        values = synced(self.environ)
        if values and values != self.last:
            project_secret(self.folder, values)
            self.last = values

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sync()

    def __enter__(self) -> Kubelet:
        self.sync()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


async def queue_jobs(url: str, queue: str, prefix: str, count: int, gap: float) -> list[str]:
    q = Queue(queue, {"connection": url, "prefix": c.BULL_PREFIX})
    outputs = [{"name": "thumb", "format": "webp", "width": 32, "height": 32}]
    ids = [f"{prefix}{i}" for i in range(count)]
    try:
        for job_id in ids:
            data = {"jobId": job_id, "dryRun": True, "source": {"inline": tiny_png()}, "outputs": outputs}
            await q.add(c.JOB_NAME, data, {"jobId": job_id})
            await asyncio.sleep(gap)
    finally:
        await q.close()
    return ids


def test_a_token_rotated_in_vault_reaches_running_processes_and_no_job_is_lost(
    deployed: tuple[Path, dict[str, str], SecretsOperator],
    vault_server: VaultServer,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    _, environ, operator = deployed
    wait_and_read(environ, operator)
    folder, port, queue = tmp_path / "secrets", free_port(), "eso-rotation"
    old, new = VALUES["api_tokens"], "eso-rotated-api-token-000000000002"
    base = worker_env(redis_server.url, queue, str(tmp_path / "data"), api_port=port, api_auth="tokens")
    base[c.ENV_SECRETS_DIR] = str(folder)
    url = f"http://127.0.0.1:{port}/api/preview/queue/metrics"
    with Kubelet(environ, folder):
        api, consumer = spawn(base, command="api"), spawn(base)
        try:
            wait_until(
                lambda: bearer_status(url, old) == 200,
                "the API with Vault's token",
                40,
                lambda: f"{api.poll()}",
            )
            ids = asyncio.run(queue_jobs(redis_server.url, queue, "before-", 20, 0.0))
            vault_server.client().secrets.kv.v2.create_or_update_secret(
                path=KV_PATH, secret={**VALUES, "api_tokens": new}
            )
            rotated = time.monotonic()
            ids += asyncio.run(queue_jobs(redis_server.url, queue, "during-", 40, 0.05))
            took = wait_until(lambda: bearer_status(url, new) == 200, "the API with the rotated token", 60,
                              lambda: f"{operator.log_tail()}")  # fmt: skip
            assert bearer_status(url, old) == 401
            print(
                f"vault write to new token accepted: {time.monotonic() - rotated:.1f} s (wait {took:.1f} s)"
            )
            done = redis_server.client()
            completed = f"{c.BULL_PREFIX}:{queue}:completed"
            wait_until(lambda: done.zcard(completed) == len(ids), "every job completed", 90,
                       lambda: str(done.zcard(completed)))  # fmt: skip
            assert set(done.zrange(completed, 0, -1)) == set(ids)
            assert done.zcard(f"{c.BULL_PREFIX}:{queue}:failed") == 0
            assert (api.poll(), consumer.poll()) == (None, None)  # re-executed in place, never exited
        finally:
            for proc in (api, consumer):
                proc.terminate()
                proc.wait(30)
            vault_server.client().secrets.kv.v2.create_or_update_secret(path=KV_PATH, secret=VALUES)


def wait_and_read(environ: dict[str, str], operator: SecretsOperator) -> dict[str, str]:
    wait_synced(environ, operator, {env: VALUES[prop] for env, prop in ENV_OF.items()})
    return synced(environ)


def test_a_redis_credential_rotated_in_vault_reaches_the_running_worker_and_no_job_is_lost(
    deployed: tuple[Path, dict[str, str], SecretsOperator],
    vault_server: VaultServer,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    _, environ, operator = deployed
    wait_and_read(environ, operator)
    folder, queue, admin = tmp_path / "secrets", "eso-redis-rotation", redis_server.client()
    new_url = redis_user(redis_server, "eso-redis-b")
    base = worker_env(redis_server.url, queue, str(tmp_path / "data"))
    del base[c.ENV_REDIS_URL]  # only from the mounted secret, as in the pods
    base[c.ENV_SECRETS_DIR] = str(folder)

    def users() -> set[str]:
        return {client.get("user", "") for client in admin.client_list()}

    with Kubelet(environ, folder):
        consumer = spawn(base)
        try:
            wait_until(lambda: "eso-redis-a" in users(), "the worker as Vault's first user", 40,
                       lambda: f"exit {consumer.poll()}; users {users()}")  # fmt: skip
            ids = asyncio.run(queue_jobs(redis_server.url, queue, "before-", 20, 0.0))
            vault_server.client().secrets.kv.v2.create_or_update_secret(
                path=KV_PATH, secret={**VALUES, "redis_url": new_url}
            )
            rotated = time.monotonic()
            ids += asyncio.run(queue_jobs(redis_server.url, queue, "during-", 40, 0.05))
            wait_until(lambda: "eso-redis-b" in users() and "eso-redis-a" not in users(),
                       "the worker as the rotated user only", 60,
                       lambda: f"users {users()}\n{operator.log_tail()}")  # fmt: skip
            print(f"vault write to the worker on the new Redis user: {time.monotonic() - rotated:.1f} s")
            admin.execute_command("ACL", "DELUSER", "eso-redis-a")  # the old credential is revoked
            ids += asyncio.run(queue_jobs(redis_server.url, queue, "after-", 10, 0.0))
            completed = f"{c.BULL_PREFIX}:{queue}:completed"
            wait_until(lambda: admin.zcard(completed) == len(ids), "every job completed", 90,
                       lambda: str(admin.zcard(completed)))  # fmt: skip
            assert set(admin.zrange(completed, 0, -1)) == set(ids)
            assert admin.zcard(f"{c.BULL_PREFIX}:{queue}:failed") == 0
            assert consumer.poll() is None  # re-executed in place, never exited
        finally:
            consumer.terminate()
            consumer.wait(30)
            redis_user(redis_server, "eso-redis-a")  # back as it was, for any later test
            vault_server.client().secrets.kv.v2.create_or_update_secret(path=KV_PATH, secret=VALUES)


def test_a_token_rotated_in_vault_reaches_the_running_pods_without_a_restart(
    deployed: tuple[Path, dict[str, str], SecretsOperator],
    vault_server: VaultServer,
) -> None:
    """The real kubelet updates the mounted Secret (no stand-in): the API pod serving on the real
    node accepts the rotated token and refuses the old one, and no container restarted."""
    _, environ, operator = deployed
    wait_and_read(environ, operator)
    old, new = VALUES["api_tokens"], "eso-rotated-api-token-in-the-pods-03"

    def pods() -> dict[str, int]:
        """Each Ready pod's restart count (a pod not Ready: -1)."""
        found = kubectl_json(environ, "-n", NAMESPACE, "get", "pods")["items"]
        return {
            p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"] if pod_ready(p) else -1
            for p in found
        }

    before = pods()
    assert before and set(before.values()) == {0}, before

    def status(token: str) -> int:
        # A port-forward of its own each time: the API re-executes in place when its secret files
        # change, and kubectl's port-forward ends at the first connection its pod refuses.
        with port_forward(environ, NAMESPACE, "service/preview-worker-api", c.API_PORT) as base:
            return bearer_status(f"{base}/api/preview/queue/metrics", token)

    wait_until(lambda: status(old) == 200, "the API pod with Vault's token", 60, lambda: "")
    vault_server.client().secrets.kv.v2.create_or_update_secret(
        path=KV_PATH, secret={**VALUES, "api_tokens": new}
    )
    try:
        rotated = time.monotonic()
        synced_new = lambda: synced(environ).get(c.ENV_API_TOKENS) == new  # noqa: E731
        wait_until(lambda: status(new) == 200, "the API pod with the rotated token", 90,
                   lambda: f"old token: {status(old)}; Secret new: {synced_new()}")  # fmt: skip
        print(f"vault write to the pod accepting the new token: {time.monotonic() - rotated:.1f} s")
        assert status(old) == 401
    finally:
        vault_server.client().secrets.kv.v2.create_or_update_secret(path=KV_PATH, secret=VALUES)
    # The same pods, Ready again, none restarted: the processes re-read the files in place.
    wait_until(lambda: pods() == before, "the same pods Ready, not restarted", 30, lambda: str(pods()))

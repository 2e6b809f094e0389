"""Secrets from Vault, synced by the real External Secrets Operator into the local cluster.

Vault is a real dev server on loopback with its Kubernetes auth method configured against
the local API server (TokenReview through a reviewer ServiceAccount, as on a real cluster).
The operator is the built ``external-secrets`` add-on running on the host. The dev stack (as
``dev-s``) declares its own SecretStore with ``secrets.store``; after ``pulumi up`` the Secret
must hold Vault's values, none of which may be in Pulumi's state.

The stack's pods run on the real node (conftest.py's ``real_node``, the built ``worker_image``)
and mount that Secret as files (``PREVIEW_SECRETS_DIR``), kept current by the kubelet itself.
Rotation: after the API token (or the Redis credential) changes in Vault, within
``refreshInterval`` plus the operator's sync and the kubelet's, the running API pod accepts the
new token and refuses the old one (the worker pod works as the new Redis user and not the old),
no container restarts, and every job queued before and during the rotation completes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bullmq import Queue
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

from bench.run_suite import tiny_png
from infra.manifests.secret_sources import STORE_SERVICE_ACCOUNT, VAULT_SECRET_NAME
from infra.tools.local.addons.secrets_operator import SecretsOperator
from infra.tools.local.cluster import control_plane
from infra.tools.local.cluster.kube import wait_until
from infra.tools.local.layout import APISERVER_PORT, HOST
from infra.tools.local.realnode import node
from tests.servers import (  # `redis_server` and `vault_server` are the session's (conftest.py)
    RedisServer,
    VaultServer,
    bearer_status,
    free_port,
)
from worker import constants as c

pytestmark = pytest.mark.timeout(600)

STACK, NAMESPACE, QUEUE = "dev-s", "preview-dev-s", "eso-pods"
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
    return redis_acl_user(redis_server.client(), redis_server.port, user, REDIS_USERS[user])


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
    text = text.replace("queueName: preview-jobs", f"queueName: {QUEUE}")
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
    return text + on_the_real_node("3m")  # real pods: the kubelet mounts the operator's Secret as files


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
        drop_stack(project, environ, STACK, finalized=("ExternalSecret", "SecretStore"))
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


def wait_and_read(environ: dict[str, str], operator: SecretsOperator) -> dict[str, str]:
    wait_synced(environ, operator, {env: VALUES[prop] for env, prop in ENV_OF.items()})
    return synced(environ)


def pods(environ: dict[str, str]) -> dict[str, int]:
    """Each pod's restart count (-1 while it is not Ready)."""
    found = kubectl_json(environ, "-n", NAMESPACE, "get", "pods")["items"]
    return {
        p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"] if pod_ready(p) else -1
        for p in found
    }


def api_status(environ: dict[str, str], token: str) -> int:
    """The API pod's answer to ``token`` (0: no answer). A port-forward of its own each time: the
    API re-executes in place when its secret files change, and kubectl's port-forward ends at the
    first connection its pod refuses."""
    with port_forward(environ, NAMESPACE, "service/preview-worker-api", c.API_PORT) as base:
        return bearer_status(f"{base}/api/preview/queue/metrics", token)


def all_completed(admin: Any, ids: list[str]) -> None:
    completed = f"{c.BULL_PREFIX}:{QUEUE}:completed"
    missing = lambda: set(ids) - set(admin.zrange(completed, 0, -1))  # noqa: E731
    wait_until(lambda: not missing(), "every job completed", 90, lambda: str(sorted(missing())))
    assert admin.zcard(f"{c.BULL_PREFIX}:{QUEUE}:failed") == 0


def test_a_token_rotated_in_vault_reaches_the_running_pods_and_no_job_is_lost(
    deployed: tuple[Path, dict[str, str], SecretsOperator],
    vault_server: VaultServer,
    redis_server: RedisServer,
) -> None:
    """The real kubelet updates the mounted Secret: the API pod accepts the rotated token and refuses
    the old one, the pods' jobs all complete, and no container restarted."""
    _, environ, operator = deployed
    wait_and_read(environ, operator)
    old, new = VALUES["api_tokens"], "eso-rotated-api-token-in-the-pods-03"
    before = pods(environ)
    assert before and set(before.values()) == {0}, before
    # The API pod runs with the token that came from Vault through the operator's Secret.
    wait_until(lambda: api_status(environ, old) == 200, "the API pod with Vault's token", 60, lambda: "")
    assert api_status(environ, "not-a-token-of-this-stack-00000001") == 401
    ids = asyncio.run(queue_jobs(redis_server.url, QUEUE, "before-", 20, 0.0))
    vault_server.client().secrets.kv.v2.create_or_update_secret(
        path=KV_PATH, secret={**VALUES, "api_tokens": new}
    )
    try:
        rotated = time.monotonic()
        ids += asyncio.run(queue_jobs(redis_server.url, QUEUE, "during-", 40, 0.05))
        synced_new = lambda: synced(environ).get(c.ENV_API_TOKENS) == new  # noqa: E731
        wait_until(lambda: api_status(environ, new) == 200, "the API pod with the rotated token", 90,
                   lambda: f"old token: {api_status(environ, old)}; Secret new: {synced_new()}")  # fmt: skip
        print(f"vault write to the pod accepting the new token: {time.monotonic() - rotated:.1f} s")
        assert api_status(environ, old) == 401
        all_completed(redis_server.client(), ids)
    finally:
        vault_server.client().secrets.kv.v2.create_or_update_secret(path=KV_PATH, secret=VALUES)
    # The same pods, Ready again, none restarted: the processes re-read the files in place.
    wait_until(lambda: pods(environ) == before, "the same pods Ready, not restarted", 30,
               lambda: str(pods(environ)))  # fmt: skip


def test_a_redis_credential_rotated_in_vault_reaches_the_running_worker_pod_and_no_job_is_lost(
    deployed: tuple[Path, dict[str, str], SecretsOperator],
    vault_server: VaultServer,
    redis_server: RedisServer,
) -> None:
    _, environ, operator = deployed
    wait_and_read(environ, operator)
    admin = redis_server.client()
    new_url = redis_user(redis_server, "eso-redis-b")
    before = pods(environ)

    def users() -> set[str]:
        return {client.get("user", "") for client in admin.client_list()}

    wait_until(lambda: "eso-redis-a" in users(), "the pods as Vault's first user", 40,
               lambda: f"users {users()}")  # fmt: skip
    ids = asyncio.run(queue_jobs(redis_server.url, QUEUE, "r-before-", 20, 0.0))
    vault_server.client().secrets.kv.v2.create_or_update_secret(
        path=KV_PATH, secret={**VALUES, "redis_url": new_url}
    )
    try:
        rotated = time.monotonic()
        ids += asyncio.run(queue_jobs(redis_server.url, QUEUE, "r-during-", 40, 0.05))
        wait_until(lambda: "eso-redis-b" in users() and "eso-redis-a" not in users(),
                   "the pods as the rotated user only", 90,
                   lambda: f"users {users()}\n{operator.log_tail()}")  # fmt: skip
        print(f"vault write to the pods on the new Redis user: {time.monotonic() - rotated:.1f} s")
        admin.execute_command("ACL", "DELUSER", "eso-redis-a")  # the old credential is revoked
        ids += asyncio.run(queue_jobs(redis_server.url, QUEUE, "r-after-", 10, 0.0))
        all_completed(admin, ids)
    finally:
        redis_user(redis_server, "eso-redis-a")  # back as it was, for any later test
        vault_server.client().secrets.kv.v2.create_or_update_secret(path=KV_PATH, secret=VALUES)
    wait_until(lambda: pods(environ) == before, "the same pods Ready, not restarted", 60,
               lambda: str(pods(environ)))  # fmt: skip

"""Helpers shared by the end-to-end tests (plain functions; fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.tools.local.cluster import shell_env
from infra.tools.local.layout import REPO_ROOT, StateDir
from infra.tools.local.ports import free_port
from infra.tools.local.realnode.layout import HOST_ADDRESS, NODE_LABEL, NODE_TAINT


def run(
    cmd: list[str],
    environ: dict[str, str],
    cwd: Path = REPO_ROOT,
    timeout: float = 180,
    stdin: str | None = None,
) -> str:
    """Run ``cmd``; return stdout, or fail the test with its exit code, stdout and stderr."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=environ, input=stdin, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc.stdout


def kubectl_json(environ: dict[str, str], *args: str) -> Any:
    """``kubectl get … -o json`` through PATH (the built kubectl), parsed."""
    return json.loads(run(["kubectl", *args, "-o", "json"], environ))


def pod_ready(pod: dict[str, Any]) -> bool:
    """True if ``pod`` (as ``kubectl get -o json`` gives it) has the condition Ready=True."""
    return any(x["type"] == "Ready" and x["status"] == "True" for x in pod["status"].get("conditions", []))


@contextlib.contextmanager
def port_forward(environ: dict[str, str], namespace: str, target: str, port: int) -> Iterator[str]:
    """``kubectl port-forward`` to ``target``'s ``port`` (a real node's pod) on a free loopback port;
    yields its ``http://127.0.0.1:<port>`` once it accepts connections, stops it at the end."""
    local = free_port()
    forward = ["kubectl", "-n", namespace, "port-forward", target, f"{local}:{port}"]
    proc = subprocess.Popen(forward, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not port_open(local):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.terminate()
                pytest.fail(f"{' '.join(forward)} did not listen: {proc.communicate(timeout=10)[0].decode()}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{local}"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def on_the_real_node(ready_timeout: str) -> str:
    """Stack-file lines putting every pod of a stack on the real node (its label and taint), with
    ``readyTimeout`` for ``pulumi up``'s wait on real probes."""
    key, value, effect = NODE_TAINT
    return (
        f"  mobius-preview-worker:readyTimeout: {ready_timeout}\n"
        "  mobius-preview-worker:scheduling:\n"
        f"    nodeSelector: {{{NODE_LABEL[0]}: {NODE_LABEL[1]}}}\n"
        f"    tolerations: [{{key: {key}, operator: Equal, value: '{value}', effect: {effect}}}]\n"
    )


def redis_acl_user(client: Any, port: int, user: str, password: str) -> str:
    """(Re-)create ``user`` with every permission on the session's Redis through ``client`` (ACL
    users are not in the AOF: a restart needs this again); return the URL pods reach it by, the
    host's address on the real node's link, which host processes can use too."""
    client.execute_command("ACL", "SETUSER", user, "reset", "on", f">{password}", "~*", "&*", "+@all")
    return f"redis://{user}:{password}@{HOST_ADDRESS}:{port}"


def port_open(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


#: Makes a project copy and its engine environment (a file backend of its own) by name.
ScratchProject = Callable[[str], tuple[Path, dict[str, str]]]


def engine_environ(state: StateDir, backend: Path) -> dict[str, str]:
    """os.environ plus `local env` for ``state``'s cluster, with a file backend of its own in ``backend``.

    Each test module (or test) gets its own backend, so stacks never leak between them.
    """
    backend.mkdir(parents=True, exist_ok=True)
    return {**os.environ, **shell_env.variables(state, backend=backend)}


#: The identity release commits are made with in the e2e tests (a release is a git commit).
GIT_IDENTITY = {
    f"GIT_{who}_{what}": value
    for who in ("AUTHOR", "COMMITTER")
    for what, value in (("NAME", "E2E Releaser"), ("EMAIL", "e2e@example.test"))
}


def git_init(project: Path, environ: dict[str, str], origin: Path | None = None) -> dict[str, str]:
    """Make ``project`` a git work tree on ``main`` (optionally pushed to a bare ``origin``).

    Returns ``environ`` plus the identity release commits are made with.
    """
    environ = {**environ, **GIT_IDENTITY}

    def git(*args: str, cwd: Path = project) -> None:
        run(["git", *args], environ, cwd=cwd, timeout=60)

    git("init", "-q", "-b", "main")
    git("add", "--all")
    git("commit", "-q", "-m", "the project as the e2e test starts it")
    if origin is not None:
        git("init", "-q", "--bare", "-b", "main", str(origin), cwd=project.parent)
        git("remote", "add", "origin", str(origin))
        git("push", "-q", "origin", "main")
    return environ


def pulumi_env(state: StateDir) -> dict[str, str]:
    """The environment `local env` exports for ``state``, on top of os.environ (backend folder made)."""
    state.pulumi_backend.mkdir(parents=True, exist_ok=True)
    return {**os.environ, **shell_env.variables(state)}


def pulumi_run(
    args: list[str], environ: dict[str, str], cwd: Path, expect_fail: bool = False, timeout: float = 600
) -> str:
    """Run the real ``pulumi`` in ``cwd``; fail the test unless it exits as expected.

    Returns stdout, or stdout and stderr together when the command is expected to fail.
    """
    proc = subprocess.run(
        ["pulumi", "--non-interactive", *args], cwd=cwd, env=environ, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    if (proc.returncode != 0) != expect_fail:
        pytest.fail(f"pulumi {' '.join(args)} exited {proc.returncode}\n{out}")
    return proc.stdout if not expect_fail else out


def pulumi_json(args: list[str], environ: dict[str, str], cwd: Path) -> Any:
    """``pulumi_run`` with JSON output, parsed."""
    return json.loads(pulumi_run(args, environ, cwd))


def drop_stack(project: Path, environ: dict[str, str], stack: str, finalized: tuple[str, ...] = ()) -> None:
    """Clean a stack off the session's cluster at a module's end without waiting: what ``destroy``
    deletes, deleted with ``kubectl --wait=false``, then the stack's state removed (not its file).

    ``pulumi destroy`` waits for every pod's grace period (KWOK keeps a pod until it ends) and for
    pulumi-kubernetes' fixed waits: 10-40 s a stack. ``destroy`` itself is proven by
    test_engine_program and test_engine_protection. Only the Namespaces the stack created and its
    objects outside them are deleted (the Namespace takes what is in it); ``existingNamespace``
    stacks keep theirs, as with ``destroy``. Their pods terminate in the background, so the
    Namespace stays Terminating for up to that grace period: use this only where no later test
    creates a Namespace of the same name (``pulumi up`` would fail on it).

    ``finalized``: kinds whose controller (KEDA, the secrets operator) puts a finalizer on them and
    stops when the module ends: they are deleted first and waited for, while it can take it off;
    else their Namespace would stay Terminating for good.
    """
    exported = pulumi_json(["stack", "export", "--stack", stack], environ, project)
    objects = [
        kube_identity(r["type"], r["id"])
        for r in exported["deployment"].get("resources") or []
        if r["type"].startswith("kubernetes:") and r.get("id")
    ]
    created = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    first = [o for o in objects if o["kind"] in finalized]
    rest = [o for o in objects if o["kind"] == "Namespace" or o["metadata"].get("namespace") not in created]
    for doomed, wait in ((first, "--timeout=60s"), (rest, "--wait=false")):
        if doomed:
            listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": doomed})
            run(["kubectl", "delete", wait, "--ignore-not-found", "-f", "-"], environ, stdin=listed)
    pulumi_run(["stack", "rm", "--stack", stack, "--force", "--yes", "--preserve-config"], environ, project)


def kube_identity(token: str, resource_id: str) -> dict[str, Any]:
    """The object a pulumi-kubernetes resource stands for, from its type token
    (``kubernetes:apps/v1:Deployment``) and its id (``<namespace>/<name>``, or ``<name>``)."""
    _, api, kind = token.split(":")
    group, version = api.split("/")
    namespace, _, name = resource_id.rpartition("/")
    metadata = {"name": name, "namespace": namespace} if namespace else {"name": name}
    return {"apiVersion": version if group == "core" else api, "kind": kind, "metadata": metadata}


def process_gone(pid: int) -> bool:
    """True if ``pid`` has exited (a zombie waiting for init to reap it counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def dev_stack_as(text: str, namespace: str, queue: str, max_replicas: int, autoscaling: str) -> str:
    """The dev stack file's text in its own namespace and queue, with ``max_replicas`` and the
    ``autoscaling`` section (its YAML lines, indented under the key) replaced."""
    text = text.replace("namespace: preview-dev", f"namespace: {namespace}")
    text = text.replace("queueName: preview-jobs", f"queueName: {queue}")
    text = text.replace("  min: 1\n    max: 2", f"  min: 1\n    max: {max_replicas}", 1)
    section = "  mobius-preview-worker:autoscaling:\n    cpuTarget: 80\n"
    assert section in text
    return text.replace(section, "  mobius-preview-worker:autoscaling:\n" + autoscaling, 1)

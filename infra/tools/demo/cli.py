"""``python -m infra demo``: the README's main command (``./dev up``), end to end on this machine.

1. toolchain, cluster, real node ``python -m infra local bootstrap`` / ``up --real-node --host-port …``
2. registry and image            ``python -m infra image registry|base|wheels|build --stack dev``,
                                 pinned into the demo's own project copy (never the work tree)
3. Redis and MinIO               on loopback; pods reach them at the host's veth address (the relay)
4. the dev stack on the cluster  ``pulumi up --stack dev`` with the real engine: the worker and the
                                 job API run as real pods of the pinned image on the real node, and
                                 the engine waits until their readiness probes answer
5. a sample preview job          ``kubectl port-forward`` to the API's Service on ``127.0.0.1:13000``;
                                 POST the job there, wait for it, fetch its artifacts from MinIO

The demo deploys from ``.local/demo/project`` (:mod:`infra.tools.local.project`): its
``Pulumi.dev.yaml`` and ``releases/`` are copies, so the demo's image pin, release history and
real-node settings (:mod:`infra.tools.demo.stack_copy`) stay in local state and trying the demo
changes no tracked file. The last pinned image is kept in ``.local/demo/pinned-image`` and
re-pinned on the next run.

Everything is left running for a person to try (``--down`` stops the demo's processes;
``python -m infra local down`` stops the cluster). Every step reuses what an earlier run built.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from infra import runner
from infra.config.model import StackConfig, load_stack_file
from infra.errors import DemoError, InfraError
from infra.manifests.common import API_NAME
from infra.tools.demo import minio, stack_copy
from infra.tools.local import procs
from infra.tools.local.cluster.kube import http_ok
from infra.tools.local.cluster.shell_env import variables
from infra.tools.local.layout import REPO_ROOT
from infra.tools.local.project import project_copy
from infra.tools.local.realnode.layout import NODE_NAME
from worker import constants as c

# Like the cluster's state (MOBIUS_LOCAL_STATE), the demo's folder can be moved (tests do).
DEMO_ROOT = Path(os.environ.get("MOBIUS_DEMO_ROOT") or REPO_ROOT / ".local" / "demo")
PROJECT = DEMO_ROOT / "project"  # the demo's project copy: its own stack files and releases/
PINNED = DEMO_ROOT / "pinned-image"  # the image the last image build pinned
# Fixed loopback ports: the dev stack pins an image of this registry, so its address must not move.
REGISTRY = "127.0.0.1:5000"
REDIS_PORT = 16379
API_PORT = 13000  # kubectl port-forward to the job API's Service
#: Host loopback ports the pods reach at the host's veth address, through the real node's relay.
HOST_PORTS = (REDIS_PORT, minio.PORT)
REPOSITORY = "mobius/preview-worker"
PY = sys.executable


@contextmanager
def step(title: str) -> Iterator[None]:
    """Print a step's title, then how long it took."""
    print(f"==> {title}", flush=True)
    started = time.monotonic()
    yield
    print(f"    done in {time.monotonic() - started:.1f}s", flush=True)


def run(*argv: str, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT) -> str:
    """Run a command; return its stdout, or raise :class:`DemoError` with its stderr."""
    return runner.run(argv, error=DemoError, env=env, cwd=str(cwd))


def last_line(output: str) -> str:
    """The last line a command printed (the CLIs print their result last)."""
    return output.strip().splitlines()[-1]


def wait_for(what: str, ready: Any, timeout: float = 60.0, proc: procs.Proc | None = None) -> None:
    """Poll ``ready()`` until it is true; raise after ``timeout`` s, or at once if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None:
            procs.require_running([proc])  # raises with the last lines of its log
        time.sleep(0.25)
    raise DemoError(f"{what} was not ready within {timeout:.0f}s")


def port_open(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def proc(name: str, *argv: str) -> procs.Proc:
    """A demo process supervised with a pid file under ``.local/demo``."""
    return procs.Proc(name, argv, DEMO_ROOT / "pids" / f"{name}.pid", DEMO_ROOT / "logs" / f"{name}.log")


def demo_procs() -> list[procs.Proc]:
    """Every long-running process the demo starts, in start order."""
    kubectl = shutil.which("kubectl", path=variables()["PATH"]) or "kubectl"
    return [
        proc("registry", PY, "-m", "infra", "image", "registry", "--root", str(DEMO_ROOT / "registry"),
             "--port", REGISTRY.rsplit(":", 1)[1]),
        proc("redis", "redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
             "--dir", str(DEMO_ROOT / "redis"), "--appendonly", "yes", "--save", "",
             "--set-proc-title", "no"),  # keep argv[0]: the pid-file check compares it
        minio.proc(DEMO_ROOT),
        proc("port-forward", kubectl, "port-forward", "--address", "127.0.0.1", "-n", dev_stack().namespace,
             f"service/{API_NAME}", f"{API_PORT}:{c.API_PORT}"),
    ]  # fmt: skip


def dev_stack() -> StackConfig:
    """The demo copy's dev stack (the committed one before the copy exists)."""
    path = PROJECT / "Pulumi.dev.yaml"
    return load_stack_file(path if path.is_file() else REPO_ROOT / "Pulumi.dev.yaml")


TOKEN_FILE = DEMO_ROOT / "api-token"


def api_token() -> str:
    """The demo API's bearer token: made once, kept in ``.local/demo/api-token`` (mode 0600)."""
    if not TOKEN_FILE.is_file():
        TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return TOKEN_FILE.read_text().strip()


def auth_header() -> dict[str, str]:
    """``Authorization: Bearer …`` for the demo's job API."""
    return {"Authorization": f"Bearer {api_token()}"}


def cluster_and_image(build_image: bool) -> str:
    """Steps 1-2: the toolchain, the cluster, the demo's project copy and its pinned dev image."""
    with step("toolchain (built once, cached by version), local cluster and its real node"):
        run(PY, "-m", "infra", "local", "bootstrap")
        run(PY, "-m", "infra", "local", "up", "--real-node", *(f"--host-port={p}" for p in HOST_PORTS))
    project_copy(PROJECT)
    if not build_image:
        if not PINNED.is_file():
            return "(image build skipped: the dev stack keeps its committed pin)"
        image = PINNED.read_text().strip()
        run(PY, "-m", "infra", "release", "--root", str(PROJECT), "pin", "--stack", "dev", "--image", image,
            "--reason", "demo: the image the last demo run built", "--no-git")  # fmt: skip
        return f"{image} (built by an earlier run)"
    registry = demo_procs()[0]
    with step(f"registry on {REGISTRY}, base image, wheels, worker image pinned into the demo's dev stack"):
        (DEMO_ROOT / "registry").mkdir(parents=True, exist_ok=True)
        procs.start(registry)
        wait_for("the registry", lambda: port_open(int(REGISTRY.rsplit(":", 1)[1])), proc=registry)
        base = run(PY, "-m", "infra", "image", "base", "--push", f"{REGISTRY}/mobius/base:bookworm")
        wheels = run(PY, "-m", "infra", "image", "wheels")
        built = run(PY, "-m", "infra", "image", "build", "--registry", REGISTRY, "--repository", REPOSITORY,
                    "--base-image", last_line(base), "--wheelhouse", last_line(wheels),
                    "--stack", "dev", "--root", str(PROJECT), "--no-git", "--no-sbom")  # fmt: skip
        image = last_line(built)
        PINNED.write_text(image + "\n")
        return image


def engine_summary(output: str) -> list[str]:
    """The summary ``pulumi up`` ends with: the ``Resources:`` block and the duration."""
    lines = output.rstrip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "Resources:"]
    return [line.rstrip() for line in lines[starts[-1] :]] if starts else lines[-3:]


def start_stores() -> None:
    """Step 3: Redis and MinIO on loopback (the pods reach them through the relay), the bucket made."""
    _, redis, store, _ = demo_procs()
    with step(f"redis on :{REDIS_PORT}, MinIO on :{minio.PORT} (pods: through the real node's relay)"):
        minio.ensure_built()
        for path in ("redis", "minio"):
            (DEMO_ROOT / path).mkdir(parents=True, exist_ok=True)
        procs.start(redis)
        procs.start(store, minio.env(DEMO_ROOT))
        wait_for("redis", lambda: port_open(REDIS_PORT), proc=redis)
        ready = f"http://127.0.0.1:{minio.PORT}/minio/health/ready"
        wait_for("MinIO", lambda: http_ok(ready), 60, store)
        bucket = dev_stack().artifacts.bucket
        assert bucket is not None  # the stack model requires it
        minio.ensure_bucket(DEMO_ROOT, bucket)


def deploy_dev_stack() -> str:
    """Step 4: the copy's dev stack pointed at the real node, then ``pulumi up``; its pods Ready."""
    env = {**os.environ, **variables()}
    with step("pulumi up --stack dev on the local cluster (worker and job API as real pods)"):
        run("pulumi", "stack", "select", "--create", "dev", "--non-interactive", env=env, cwd=PROJECT)
        creds = minio.credentials(DEMO_ROOT)
        held = {c.ENV_API_TOKENS: api_token(), c.ENV_S3_ACCESS_KEY_ID: creds["accessKey"],
                c.ENV_S3_SECRET_ACCESS_KEY: creds["secretKey"]}  # fmt: skip
        stack_copy.point_at_real_node(PROJECT, env, REDIS_PORT, minio.PORT, held)
        out = run("pulumi", "up", "--stack", "dev", "--yes", "--skip-preview", "--non-interactive",
                  env=env, cwd=PROJECT)  # fmt: skip
        for line in engine_summary(out):
            print(f"    {line}")
        jsonpath = "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}"
        names = run("kubectl", "get", "deployments", "-A", "-l", "app.kubernetes.io/name=preview-worker",
                    "-o", jsonpath, env=env)  # fmt: skip
        for ref in names.split():
            namespace, name = ref.split("/")
            run("kubectl", "-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=180s",
                env=env)  # fmt: skip
        return names.strip() or "(no Deployments found)"


def forward_api() -> None:
    """``kubectl port-forward`` to the job API's Service on ``127.0.0.1:API_PORT`` (restarted, so it
    reaches the pods this run deployed)."""
    forward = demo_procs()[3]
    with step(f"job API: kubectl port-forward service/{API_NAME} to 127.0.0.1:{API_PORT}"):
        procs.stop(forward)
        procs.start(forward, {**os.environ, **variables()})
        health = f"http://127.0.0.1:{API_PORT}{c.API_HEALTH_PATH}"
        wait_for("the job API through the port-forward", lambda: http_ok(health), 60, forward)


def sample_job() -> dict[str, Any]:
    """A job with an inline 1600x1200 JPEG and two renditions."""
    from PIL import Image  # the worker's dependency; imported here to keep `infra` light

    image = Image.linear_gradient("L").resize((1600, 1200)).convert("RGB")
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return {
        "jobId": f"demo-{int(time.time())}",
        "source": {"inline": base64.b64encode(buf.getvalue()).decode()},
        "outputs": [
            {"name": "thumb", "format": "webp", "width": 320, "height": 320, "fit": "contain"},
            {"name": "card", "format": "jpeg", "width": 640, "height": 360, "fit": "cover"},
        ],
        "metadata": {"origin": "./dev up"},
    }


def submit_sample_job() -> list[str]:
    """Step 5: POST the job, wait until it completes, fetch its artifacts; one line per artifact."""
    api = f"http://127.0.0.1:{API_PORT}/api/preview/job"
    with step("sample preview job through the in-cluster job API, rendered by a worker pod"):
        job = sample_job()
        posted = httpx.post(api, json=job, timeout=10, headers=auth_header())
        if posted.status_code not in (200, 201):
            raise DemoError(f"POST {api} answered {posted.status_code}: {posted.text}")
        job_id = posted.json()["jobId"]
        state: dict[str, Any] = {}

        def finished() -> bool:
            state.update(httpx.get(f"{api}/{job_id}/status", timeout=5, headers=auth_header()).json())
            return state.get("state") in {"completed", "failed"}

        wait_for(f"job {job_id}", finished, 60)
        if state["state"] != "completed":
            raise DemoError(f"job {job_id} failed: {state}")
        manifest = httpx.get(f"{api}/{job_id}/artifact", timeout=5, headers=auth_header()).json()
        folder = DEMO_ROOT / "data" / job_id
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"job {job_id} completed; artifacts (fetched from MinIO by their presigned URLs) in {folder}"
        ]
        for r in manifest["renditions"]:
            got = httpx.get(r["url"], timeout=10)  # presigned for the host: 127.0.0.1:<MinIO>
            if got.status_code != 200:
                raise DemoError(f"GET {r['name']}'s presigned URL answered {got.status_code}")
            path = folder / Path(r["path"]).name  # the file name only: nothing outside the folder
            path.write_bytes(got.content)
            lines.append(f"  {r['name']}: {path} ({r['format']} {r['width']}x{r['height']}, {r['bytes']} B)")
        return lines


def worker_pods() -> str:
    """The worker and API pods and the node each runs on: the real node, not KWOK's."""
    jsonpath = "jsonpath={range .items[*]}{.metadata.name}@{.spec.nodeName} {end}"
    found = run("kubectl", "-n", dev_stack().namespace, "get", "pods", "-o", jsonpath,
                env={**os.environ, **variables()})  # fmt: skip
    return found.strip() or "(none)"


def down() -> int:
    """Stop the demo's processes (the cluster and its real node have their own ``local down``)."""
    for p in reversed(demo_procs()):
        print(f"{p.name}: {'stopped' if procs.stop(p) else 'was not running'}")
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``python -m infra demo``."""
    parser = argparse.ArgumentParser(prog="python -m infra demo", description=__doc__.splitlines()[0])
    parser.add_argument("--down", action="store_true",
                        help="stop the demo's registry, Redis, MinIO and the API's port-forward")  # fmt: skip
    parser.add_argument("--skip-image", action="store_true", help="keep the dev stack's current image pin")
    args = parser.parse_args(argv)
    if args.down:
        return down()
    started = time.monotonic()
    try:
        image = cluster_and_image(build_image=not args.skip_image)
        start_stores()
        deployments = deploy_dev_stack()
        forward_api()
        lines = submit_sample_job()
        pods = worker_pods()
    except (InfraError, httpx.HTTPError) as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    print(f"\nimage:        {image}\ndeployments:  {deployments}\npods:         {pods}\n" + "\n".join(lines))
    elapsed = time.monotonic() - started
    print(f"\njob API: http://127.0.0.1:{API_PORT}/api/preview/ (port-forward to the pods on {NODE_NAME}; "
          f"all up in {elapsed:.0f}s)")  # fmt: skip
    print(f'         its bearer token: curl -H "Authorization: Bearer $(cat {TOKEN_FILE})" …')
    print("stop: python -m infra demo --down; python -m infra local down")
    return 0

"""``python -m infra demo``: the README's main command (``./dev up``), end to end on this machine.

1. toolchain and local cluster   ``python -m infra local bootstrap`` / ``up``
2. registry and image            ``python -m infra image registry|base|wheels|build --stack dev``,
                                 pinned into the demo's own project copy (never the work tree)
3. the dev stack on the cluster  ``pulumi up --stack dev`` with the real engine and plugins
4. Redis, worker and job API     ``redis-server``, ``python -m worker run`` / ``api`` on loopback
5. a sample preview job          POST it, wait for it, print where its artifacts are

The demo deploys from ``.local/demo/project`` (:mod:`infra.tools.local.project`): its
``Pulumi.dev.yaml`` and ``releases/`` are copies, so the demo's image pin and release
history stay in local state and trying the demo changes no tracked file. The last
pinned image is kept in ``.local/demo/pinned-image`` and re-pinned on the next run.

Everything is left running for a person to try (``--down`` stops the demo's processes;
``python -m infra local down`` stops the cluster). Every step reuses what an earlier run built.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from infra import runner
from infra.errors import DemoError, InfraError
from infra.tools.local import procs
from infra.tools.local.cluster.kube import http_ok
from infra.tools.local.cluster.shell_env import variables
from infra.tools.local.layout import REPO_ROOT
from infra.tools.local.project import project_copy
from worker import constants as c

# Like the cluster's state (MOBIUS_LOCAL_STATE), the demo's folder can be moved (tests do).
DEMO_ROOT = Path(os.environ.get("MOBIUS_DEMO_ROOT") or REPO_ROOT / ".local" / "demo")
PROJECT = DEMO_ROOT / "project"  # the demo's project copy: its own stack files and releases/
PINNED = DEMO_ROOT / "pinned-image"  # the image the last image build pinned
# Fixed loopback ports: the dev stack pins an image of this registry, so its address must not move.
REGISTRY = "127.0.0.1:5000"
REDIS_PORT = 16379
API_PORT = 13000
METRICS_PORT = 19100
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
    return [
        proc("registry", PY, "-m", "infra", "image", "registry", "--root", str(DEMO_ROOT / "registry"),
             "--port", REGISTRY.rsplit(":", 1)[1]),
        proc("redis", "redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
             "--dir", str(DEMO_ROOT / "redis"), "--appendonly", "yes", "--save", "",
             "--set-proc-title", "no"),  # keep argv[0]: the pid-file check compares it
        proc("worker", PY, "-m", "worker", "run"),
        proc("api", PY, "-m", "worker", "api"),
    ]  # fmt: skip


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


def worker_env() -> dict[str, str]:
    """The worker's and the API's environment: loopback Redis, artifacts under .local/demo/data."""
    return {
        **os.environ,
        c.ENV_API_TOKENS: api_token(),
        c.ENV_REDIS_URL: f"redis://127.0.0.1:{REDIS_PORT}",
        c.ENV_DATA_DIR: str(DEMO_ROOT / "data"),
        c.ENV_INPUT_ROOT: str(DEMO_ROOT / "inputs"),
        c.ENV_API_HOST: "127.0.0.1",
        c.ENV_API_PORT: str(API_PORT),
        c.ENV_METRICS_PORT: str(METRICS_PORT),
    }


def cluster_and_image(build_image: bool) -> str:
    """Steps 1-2: the toolchain, the cluster, the demo's project copy and its pinned dev image."""
    with step("toolchain (built once, cached by version) and local cluster"):
        run(PY, "-m", "infra", "local", "bootstrap")
        run(PY, "-m", "infra", "local", "up")
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


def deploy_dev_stack() -> str:
    """Step 3: ``pulumi up --stack dev`` from the demo's copy; its Deployments Available."""
    env = {**os.environ, **variables()}
    with step("pulumi up --stack dev on the local cluster"):
        run("pulumi", "stack", "select", "--create", "dev", "--non-interactive", env=env, cwd=PROJECT)
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


def start_worker_and_api() -> None:
    """Step 4: Redis, then a fresh worker and API (restarted, so they run the current code)."""
    _, redis, worker, api = demo_procs()
    with step(f"redis on :{REDIS_PORT}, worker (health :{METRICS_PORT}), job API on :{API_PORT}"):
        for path in ("redis", "data", "inputs"):
            (DEMO_ROOT / path).mkdir(parents=True, exist_ok=True)
        procs.start(redis)
        wait_for("redis", lambda: port_open(REDIS_PORT), proc=redis)
        for p in (worker, api):
            procs.stop(p)
            procs.start(p, worker_env())
        ready = f"http://127.0.0.1:{METRICS_PORT}{c.READINESS_PATH}"
        wait_for("the worker", lambda: http_ok(ready), 90, worker)
        wait_for("the job API", lambda: http_ok(f"http://127.0.0.1:{API_PORT}{c.API_HEALTH_PATH}"), 90, api)
        procs.require_running([redis, worker, api])


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
    """Step 5: POST the job, wait until it completes, return one line per artifact."""
    api = f"http://127.0.0.1:{API_PORT}/api/preview/job"
    with step("sample preview job through the job API"):
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
        return [f"job {job_id} completed; artifacts in {folder}"] + [
            f"  {r['name']}: {folder / r['path']} ({r['format']} {r['width']}x{r['height']}, {r['bytes']} B)"
            for r in manifest["renditions"]
        ]


def down() -> int:
    """Stop the demo's processes (the cluster has its own ``local down``)."""
    for p in reversed(demo_procs()):
        print(f"{p.name}: {'stopped' if procs.stop(p) else 'was not running'}")
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``python -m infra demo``."""
    parser = argparse.ArgumentParser(prog="python -m infra demo", description=__doc__.splitlines()[0])
    parser.add_argument("--down", action="store_true", help="stop the demo's registry, Redis, worker and API")
    parser.add_argument("--skip-image", action="store_true", help="keep the dev stack's current image pin")
    args = parser.parse_args(argv)
    if args.down:
        return down()
    started = time.monotonic()
    try:
        image = cluster_and_image(build_image=not args.skip_image)
        deployments = deploy_dev_stack()
        start_worker_and_api()
        lines = submit_sample_job()
    except InfraError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    print(f"\nimage:        {image}\ndeployments:  {deployments}\n" + "\n".join(lines))
    elapsed = time.monotonic() - started
    print(f"\njob API: http://127.0.0.1:{API_PORT}/api/preview/  (all up in {elapsed:.0f}s)")
    print(f'         its bearer token: curl -H "Authorization: Bearer $(cat {TOKEN_FILE})" …')
    print("stop: python -m infra demo --down; python -m infra local down")
    return 0

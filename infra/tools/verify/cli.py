"""``python -m infra verify --stack NAME``: a post-deploy smoke check through the stack's real outputs.

Checks, in order (each a row of the printed table; exit 1 if any fails, 2 on bad usage):

* ``outputs``      the stack's last ``pulumi up`` succeeded and exported what the program exports;
* ``deployments``  each Deployment in the outputs (and the API's) is Available, with at least one
  ready pod, running the digest the outputs pin;
* ``objects``      the HPAs, the PodDisruptionBudget, the ServiceMonitors and the PrometheusRule exist;
* ``api health``   ``GET /api/preview/worker/health`` answers the documented document, healthy;
* ``worker ready`` a worker's ``/readyz`` says ready;
* ``dry run``      a ``dryRun`` job enqueued through the API (with the bearer token in
  ``$PREVIEW_API_TOKEN``, or the variable ``--token-env`` names) completes;
* ``metrics``      the worker's ``preview_worker_job_outcomes_total`` moved by that job.

The cluster is read with ``kubectl`` (``KUBECONFIG`` as for ``pulumi``); the stack's outputs
through the Automation API, with the backend and passphrase the environment selects. The API
and the worker are reached at ``--api`` and ``--worker`` (a port-forward, an ingress, or the
host-run processes of the local demo).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from infra.errors import VerifyError
from infra.tools.release import engine
from infra.tools.release.cli import find_root
from worker import constants as c

#: What ``GET /api/preview/worker/health`` documents (docs/worker.md): key → type.
HEALTH_SHAPE: dict[str, type | tuple[type, ...]] = {
    "status": str,
    "timestamp": str,
    "redis": dict,
    "queue": dict,
}
QUEUE_SHAPE = ("name", "waiting", "active", "completed", "failed", "delayed", "total")
#: A 1x1 PNG: the dry-run job's inline source (a dry run validates, never decodes it).
_PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@dataclass(frozen=True)
class Row:
    """One check's result."""

    check: str
    ok: bool
    detail: str


@dataclass
class Target:
    """What the checks look at."""

    stack: str
    root: Path
    api: str
    worker: str
    timeout: float
    outputs: dict[str, Any]
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        """The API's ``Authorization`` header."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def _kubectl(*args: str) -> Any:
    try:
        done = subprocess.run(["kubectl", *args, "-o", "json"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VerifyError(f"kubectl: {exc}") from None
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        raise VerifyError(f"kubectl {' '.join(args[:3])}: {said[-1] if said else done.returncode}")
    return json.loads(done.stdout)


def check_outputs(t: Target) -> str:
    """The outputs of the stack's last successful update."""
    handle = engine.stack_handle(t.root, t.stack)
    try:
        updates = [u for u in handle.history(page_size=5) if u.kind == "update"]
        outputs = {key: out.value for key, out in handle.outputs().items()}
    except Exception as exc:
        raise VerifyError(f"cannot read stack {t.stack!r}: {engine.why(exc)}") from None
    if not updates or updates[0].result != "succeeded":
        raise VerifyError(
            f"the last update of {t.stack} did not succeed ({updates[0].result if updates else 'none'})"
        )
    missing = [k for k in ("namespace", "deployments", "digests", "api") if k not in outputs]
    if missing:
        raise VerifyError(f"outputs lack {', '.join(missing)}: is this the preview worker's stack?")
    t.outputs = outputs
    return f"namespace {outputs['namespace']}, tracks {', '.join(sorted(outputs['deployments']))}"


def check_deployments(t: Target) -> str:
    """Every Deployment Available, with ready pods, at its pinned digest."""
    ns, digests = t.outputs["namespace"], t.outputs["digests"]
    wanted = {name: digests[track] for track, name in t.outputs["deployments"].items()}
    workers = set(wanted)
    wanted[t.outputs["api"]] = digests[c.TRACK_STABLE]
    seen = []
    for name, digest in sorted(wanted.items()):
        found = _kubectl("-n", ns, "get", "deployment", name)
        status = found.get("status", {})
        available = any(
            cond.get("type") == "Available" and cond.get("status") == "True"
            for cond in status.get("conditions", [])
        )
        ready, want = int(status.get("readyReplicas") or 0), int(found["spec"].get("replicas") or 0)
        idle = want == 0 and name in workers and bool(t.outputs.get("scaleToZero"))  # KEDA's choice
        if not available or (ready < 1 and not idle) or ready < want:
            raise VerifyError(f"{name}: {ready}/{want} pods ready, Available={available}")
        images = [ctr["image"] for ctr in found["spec"]["template"]["spec"]["containers"]]
        if not all(image.endswith(f"@{digest}") for image in images):
            raise VerifyError(f"{name} runs {', '.join(images)}, not the pinned {digest}")
        seen.append(f"{name} {ready}/{want}")
    return "; ".join(seen)


def check_objects(t: Target) -> str:
    """The autoscaling, disruption and monitoring objects of the stack's instance."""
    ns = t.outputs["namespace"]
    counts = {}
    for kind in (
        "hpa",
        "pdb",
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ):
        items = _kubectl("-n", ns, "get", kind, "-l", f"app.kubernetes.io/instance={t.stack}")["items"]
        counts[kind.split(".")[0]] = len(items)
    expected_hpas = len(t.outputs["deployments"]) + 1  # a track each, and the API's
    problems = []
    if counts["hpa"] < expected_hpas:
        problems.append(f"{counts['hpa']} HPAs, expected {expected_hpas}")
    problems += [f"no {kind}" for kind in ("pdb", "servicemonitors", "prometheusrules") if counts[kind] == 0]
    if problems:
        raise VerifyError("; ".join(problems))
    return ", ".join(f"{n} {k}" for k, n in counts.items())


def check_api_health(t: Target) -> str:
    """The API's health document has the documented shape and says healthy."""
    body = _get_json(f"{t.api}{c.API_HEALTH_PATH}")
    wrong = [k for k, kind in HEALTH_SHAPE.items() if not isinstance(body.get(k), kind)]
    wrong += [f"queue.{k}" for k in QUEUE_SHAPE if k not in (body.get("queue") or {})]
    if wrong:
        raise VerifyError(f"health document lacks or mistypes {', '.join(wrong)}")
    if body["status"] != "healthy" or body["redis"].get("status") != "connected":
        raise VerifyError(f"status {body['status']}, redis {body['redis'].get('status')}")
    return f"healthy, queue {body['queue']['name']} ({body['queue']['waiting']} waiting)"


def check_worker_ready(t: Target) -> str:
    """A worker's readiness endpoint."""
    body = _get_json(f"{t.worker}{c.READINESS_PATH}")
    if body.get("status") != "ready":
        raise VerifyError(f"worker says {body}")
    return "ready"


def _get_json(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        reply = httpx.get(url, timeout=5, headers=headers)
    except httpx.HTTPError as exc:
        raise VerifyError(f"GET {url}: {type(exc).__name__}") from None
    try:
        body = reply.json()
    except ValueError:
        raise VerifyError(f"GET {url}: {reply.status_code}, not JSON") from None
    if not isinstance(body, dict):
        raise VerifyError(f"GET {url}: {reply.status_code}, not a JSON object")
    return body


def _outcomes(t: Target) -> float:
    try:
        text = httpx.get(f"{t.worker}{c.METRICS_PATH}", timeout=5).text
    except httpx.HTTPError as exc:
        raise VerifyError(f"GET {t.worker}{c.METRICS_PATH}: {type(exc).__name__}") from None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"{c.METRIC_JOB_OUTCOMES}{{") or line.startswith(f"{c.METRIC_JOB_OUTCOMES} "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def check_dry_run(t: Target, before: list[float]) -> str:
    """A dryRun job through the API completes (``before`` gets the outcome count it started from)."""
    before.append(_outcomes(t))
    job_id = f"verify-{uuid.uuid4().hex[:12]}"
    job = {"jobId": job_id, "dryRun": True, "source": {"inline": _PIXEL},
           "outputs": [{"name": "verify", "format": "png", "width": 1, "height": 1}]}  # fmt: skip
    try:
        posted = httpx.post(f"{t.api}/api/preview/job", json=job, timeout=10, headers=t.headers)
    except httpx.HTTPError as exc:
        raise VerifyError(f"POST {t.api}/api/preview/job: {type(exc).__name__}") from None
    if posted.status_code != 201:
        raise VerifyError(f"POST /api/preview/job answered {posted.status_code}: {posted.text[:200]}")
    deadline, state = time.monotonic() + t.timeout, "?"
    while time.monotonic() < deadline:
        state = str(_get_json(f"{t.api}/api/preview/job/{job_id}/status", t.headers).get("state"))
        if state == "completed":
            return f"job {job_id} completed"
        if state == "failed":
            raise VerifyError(f"job {job_id} failed")
        time.sleep(0.2)
    raise VerifyError(f"job {job_id} still {state} after {t.timeout:g}s (is a worker consuming?)")


def check_metrics(t: Target, before: list[float]) -> str:
    """The worker's outcome counter moved since the dry run started."""
    if not before:
        raise VerifyError("no dry run to compare with")
    deadline = time.monotonic() + 10
    while True:
        now = _outcomes(t)
        if now > before[0]:
            return f"{c.METRIC_JOB_OUTCOMES} {before[0]:g} → {now:g}"
        if time.monotonic() > deadline:
            raise VerifyError(f"{c.METRIC_JOB_OUTCOMES} stayed at {now:g}")
        time.sleep(0.5)


def run_checks(t: Target) -> list[Row]:
    """Every check in order; one that needs an earlier one's result is skipped when that failed."""
    before: list[float] = []
    checks: list[tuple[str, Callable[[], str], str | None]] = [
        ("outputs", lambda: check_outputs(t), None),
        ("deployments", lambda: check_deployments(t), "outputs"),
        ("objects", lambda: check_objects(t), "outputs"),
        ("api health", lambda: check_api_health(t), None),
        ("worker ready", lambda: check_worker_ready(t), None),
        ("dry run", lambda: check_dry_run(t, before), "api health"),
        ("metrics", lambda: check_metrics(t, before), "dry run"),
    ]
    rows: dict[str, Row] = {}
    for name, check, needs in checks:
        if needs is not None and not rows[needs].ok:
            rows[name] = Row(name, False, f"not run: {needs} failed")
            continue
        try:
            rows[name] = Row(name, True, check())
        except VerifyError as exc:
            rows[name] = Row(name, False, str(exc))
    return list(rows.values())


def table(rows: list[Row]) -> str:
    """The printed result."""
    width = max(len(r.check) for r in rows)
    return "\n".join(f"{'ok  ' if r.ok else 'FAIL'}  {r.check:<{width}}  {r.detail}" for r in rows)


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(
            f"must be an http(s) base URL like http://127.0.0.1:8080, got {text!r}"
        )
    return text.rstrip("/")


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m infra verify", description=__doc__.split("\n")[0])
    p.add_argument("--stack", required=True)
    p.add_argument("--api", required=True, type=_url, metavar="URL", help="the job API's base URL")
    p.add_argument(
        "--worker", required=True, type=_url, metavar="URL", help="a worker's health/metrics base URL"
    )
    p.add_argument(
        "--token-env",
        default="PREVIEW_API_TOKEN",
        metavar="NAME",
        help="environment variable holding a bearer token of the API (default PREVIEW_API_TOKEN)",
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds the dry-run job may take (default 60)"
    )
    p.add_argument("--root", type=Path, default=None, help="the project root (default: found from cwd)")
    return p


def main(argv: list[str]) -> int:
    """Entry point for ``python -m infra verify``."""
    args = parser().parse_args(argv)
    root = (args.root or find_root(Path.cwd())).resolve()
    token = os.environ.get(args.token_env, "")  # from the environment, never the command line
    target = Target(args.stack, root, args.api, args.worker, args.timeout, {}, token)
    rows = run_checks(target)
    print(table(rows))
    failed = [r.check for r in rows if not r.ok]
    if failed:
        print(f"verify --stack {args.stack}: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"verify --stack {args.stack}: all {len(rows)} checks passed")
    return 0

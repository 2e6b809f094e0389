"""The checks of ``python -m infra verify`` (:mod:`infra.tools.verify.cli`), one function each.

Each takes the :class:`Target` and returns what it saw, or raises :class:`VerifyError` saying
what was expected and what was found; :func:`run_checks` runs them in order.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from infra import runner
from infra.components import outputs as stack_outputs
from infra.errors import VerifyError
from infra.tools.release import engine
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
    return json.loads(runner.run(["kubectl", *args, "-o", "json"], error=VerifyError, timeout=60))


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
    required = (stack_outputs.NAMESPACE, stack_outputs.DEPLOYMENTS, stack_outputs.DIGESTS, stack_outputs.API)
    missing = [k for k in required if k not in outputs]
    if missing:
        raise VerifyError(f"outputs lack {', '.join(missing)}: is this the preview worker's stack?")
    t.outputs = outputs
    tracks = ", ".join(sorted(outputs[stack_outputs.DEPLOYMENTS]))
    return f"namespace {outputs[stack_outputs.NAMESPACE]}, tracks {tracks}"


def check_deployments(t: Target) -> str:
    """Every Deployment Available, with ready pods, at its pinned digest."""
    ns, digests = t.outputs[stack_outputs.NAMESPACE], t.outputs[stack_outputs.DIGESTS]
    wanted = {name: digests[track] for track, name in t.outputs[stack_outputs.DEPLOYMENTS].items()}
    workers = set(wanted)
    wanted[t.outputs[stack_outputs.API]] = digests[c.TRACK_STABLE]
    seen = []
    for name, digest in sorted(wanted.items()):
        found = _kubectl("-n", ns, "get", "deployment", name)
        status = found.get("status", {})
        available = any(
            cond.get("type") == "Available" and cond.get("status") == "True"
            for cond in status.get("conditions", [])
        )
        ready, want = int(status.get("readyReplicas") or 0), int(found["spec"].get("replicas") or 0)
        scale_to_zero = bool(t.outputs.get(stack_outputs.SCALE_TO_ZERO))
        idle = want == 0 and name in workers and scale_to_zero  # KEDA's choice
        if not available or (ready < 1 and not idle) or ready < want:
            raise VerifyError(f"{name}: {ready}/{want} pods ready, Available={available}")
        images = [ctr["image"] for ctr in found["spec"]["template"]["spec"]["containers"]]
        if not all(image.endswith(f"@{digest}") for image in images):
            raise VerifyError(f"{name} runs {', '.join(images)}, not the pinned {digest}")
        seen.append(f"{name} {ready}/{want}")
    return "; ".join(seen)


def check_objects(t: Target) -> str:
    """The autoscaling, disruption and monitoring objects of the stack's instance."""
    ns = t.outputs[stack_outputs.NAMESPACE]
    counts = {}
    for kind in (
        "hpa",
        "pdb",
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ):
        items = _kubectl("-n", ns, "get", kind, "-l", f"app.kubernetes.io/instance={t.stack}")["items"]
        counts[kind.split(".")[0]] = len(items)
    expected_hpas = len(t.outputs[stack_outputs.DEPLOYMENTS]) + 1  # a track each, and the API's
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

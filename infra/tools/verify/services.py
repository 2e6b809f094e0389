"""The checks of what a CI runner reaches: the job API (with its token) and Prometheus.

No check talks to a pod: the stack's NetworkPolicy opens the workers' ports to the monitoring
namespace only, and pods come and go with every rollout. What the workers do is read from
Prometheus, summed over every pod of each track (so an idle pod beside a busy one changes
nothing), with the same selectors as the alert rules (namespace, the worker's scrape job).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from infra.components import outputs as stack_outputs
from infra.errors import VerifyError
from infra.manifests.common import APP_NAME
from infra.promql import FINISHED
from infra.tools.release.promapi import Prometheus
from infra.tools.verify.target import Target
from worker import constants as c

#: What ``GET /api/preview/worker/health`` documents (docs/worker.md): key → type.
HEALTH_SHAPE: dict[str, type | tuple[type, ...]] = {
    "status": str,
    "timestamp": str,
    "redis": dict,
    "queue": dict,
}
QUEUE_SHAPE = ("name", "waiting", "active", "completed", "failed", "delayed", "total")
#: What ``GET /api/preview/queue/metrics`` answers: the queue's name, its DLQ's, a count per state.
QUEUE_METRICS_PATH = f"{c.API_PATH_PREFIX}/queue/metrics"
JOB_PATH = f"{c.API_PATH_PREFIX}/job"
#: A 1x1 PNG: the dry-run job's inline source (a dry run validates, never decodes it).
_PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    try:
        reply = httpx.get(url, timeout=10, headers=headers)
    except httpx.HTTPError as exc:
        raise VerifyError(f"GET {url}: cannot connect ({type(exc).__name__})") from None
    try:
        body = reply.json()
    except ValueError:
        raise VerifyError(f"GET {url}: {reply.status_code}, not JSON") from None
    if not isinstance(body, dict):
        raise VerifyError(f"GET {url}: {reply.status_code}, not a JSON object")
    return reply.status_code, body


def _refused(status: int, body: dict[str, Any], what: str) -> VerifyError:
    hint = " (is the token in --token-env one of the stack's API tokens?)" if status in (401, 403) else ""
    return VerifyError(f"{what} answered {status}: {str(body.get('error', body))[:200]}{hint}")


def check_api_health(t: Target) -> str:
    """The API's health document has the documented shape and says healthy."""
    _, body = _get_json(f"{t.api}{c.API_HEALTH_PATH}")
    wrong = [k for k, kind in HEALTH_SHAPE.items() if not isinstance(body.get(k), kind)]
    wrong += [f"queue.{k}" for k in QUEUE_SHAPE if k not in (body.get("queue") or {})]
    if wrong:
        raise VerifyError(f"health document lacks or mistypes {', '.join(wrong)}")
    if body["status"] != "healthy" or body["redis"].get("status") != "connected":
        raise VerifyError(f"status {body['status']}, redis {body['redis'].get('status')}")
    return f"healthy, queue {body['queue']['name']} ({body['queue']['waiting']} waiting)"


def check_queue(t: Target) -> str:
    """The API's queue metrics (a ``read`` token): a count for every state, the DLQ's included."""
    status, body = _get_json(f"{t.api}{QUEUE_METRICS_PATH}", t.headers)
    if status != 200:
        raise _refused(status, body, f"GET {QUEUE_METRICS_PATH}")
    wrong = [s for s in c.QUEUE_STATES if not isinstance(body.get(s), int)]
    wrong += [k for k in ("queue", "dlqName") if not isinstance(body.get(k), str)]
    if wrong:
        raise VerifyError(f"queue metrics lack or mistype {', '.join(wrong)}")
    counts = ", ".join(f"{body[s]} {s}" for s in c.QUEUE_STATES)
    return f"{body['queue']}: {counts}"


def _selector(t: Target) -> str:
    return f'{c.LABEL_NAMESPACE}="{t.outputs[stack_outputs.NAMESPACE]}"'


def _finished(prom: Prometheus, t: Target) -> dict[str, float]:
    """Finished jobs so far per track, summed over every pod of the track (0 before the first)."""
    totals = {}
    for track in sorted(t.outputs[stack_outputs.DEPLOYMENTS]):
        sel = f'{_selector(t)},{c.LABEL_TRACK}="{track}",{FINISHED}'
        totals[track] = prom.query(f"sum({c.METRIC_JOB_OUTCOMES}{{{sel}}})") or 0.0
    return totals


def check_targets(t: Target) -> str:
    """Prometheus scrapes the stack's workers: every target up, at least one unless scaled to zero.

    Also records the finished-job totals the ``metrics`` check compares with.
    """
    up = f'up{{{_selector(t)},job="{APP_NAME}"}}'
    with Prometheus(t.prometheus) as prom:
        targets = prom.query(f"count({up})") or 0.0
        healthy = prom.query(f"sum({up})") or 0.0
        t.baseline = _finished(prom, t)
    if healthy < targets:
        raise VerifyError(f"{targets - healthy:g} of {targets:g} worker targets down ({up} == 0)")
    if targets == 0 and not t.outputs.get(stack_outputs.SCALE_TO_ZERO):
        raise VerifyError(f"Prometheus scrapes no worker: {up} has no series")
    totals = ", ".join(f"{track} {n:g}" for track, n in t.baseline.items())
    return f"{healthy:g}/{targets:g} worker targets up; finished jobs {totals}"


def check_dry_run(t: Target) -> str:
    """A dryRun job enqueued through the API (an ``enqueue`` token) completes."""
    job_id = f"verify-{uuid.uuid4().hex[:12]}"
    job = {"jobId": job_id, "dryRun": True, "source": {"inline": _PIXEL},
           "outputs": [{"name": "verify", "format": "png", "width": 1, "height": 1}]}  # fmt: skip
    try:
        posted = httpx.post(f"{t.api}{JOB_PATH}", json=job, timeout=10, headers=t.headers)
    except httpx.HTTPError as exc:
        raise VerifyError(f"POST {t.api}{JOB_PATH}: cannot connect ({type(exc).__name__})") from None
    if posted.status_code != 201:
        raise VerifyError(f"POST {JOB_PATH} answered {posted.status_code}: {posted.text[:200]}")
    deadline, state = time.monotonic() + t.timeout, "?"
    while time.monotonic() < deadline:
        status, body = _get_json(f"{t.api}{JOB_PATH}/{job_id}/status", t.headers)
        if status != 200:
            raise _refused(status, body, f"GET {JOB_PATH}/{job_id}/status")
        state = str(body.get("state"))
        if state == "completed":
            return f"job {job_id} completed"
        if state == "failed":
            raise VerifyError(f"job {job_id} failed: {str(body.get('failedReason'))[:200]}")
        time.sleep(0.2)
    raise VerifyError(f"job {job_id} still {state} after {t.timeout:g}s (is a worker consuming?)")


def check_metrics(t: Target) -> str:
    """Prometheus counts the dry run: the finished jobs summed over every pod of each track grew."""
    if t.baseline is None:
        raise VerifyError("no baseline: the targets check did not record one")
    before, now = t.baseline, t.baseline
    deadline = time.monotonic() + t.timeout
    with Prometheus(t.prometheus) as prom:
        while True:
            now = _finished(prom, t)
            if sum(now.values()) > sum(before.values()):
                moved = ", ".join(f"{k} {before[k]:g} → {now[k]:g}" for k in now)
                return f"{c.METRIC_JOB_OUTCOMES} (finished, all pods): {moved}"
            if time.monotonic() > deadline:
                raise VerifyError(
                    f"{c.METRIC_JOB_OUTCOMES} (finished, summed over every pod) stayed at "
                    f"{sum(now.values()):g} for {t.timeout:g}s after the dry run"
                )
            time.sleep(1)

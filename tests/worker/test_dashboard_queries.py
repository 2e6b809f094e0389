"""Every query of the Grafana dashboard (infra/manifests/observability/dashboard.py) against the real
system: Debian's Prometheus scrapes two real ``python -m worker run`` processes (a stable and a canary
track, each with its own release) and a real ``python -m worker api``, and evaluates the stack's SLO
recording rules, after real jobs of every outcome and real API requests (201, 400, 401). Then each
panel's queries, with the template variables substituted, answer series of the expected shape and
values: e.g. the canary's failure ratio is its failed jobs over its finished jobs, as it counted them.

The Redis memory budget panel reads the workers' own gauges of the test's real Redis (its INFO
memory, with a maxmemory set for the test). The cluster's series the dashboard reads besides the
project's own (kube-state-metrics' Deployment and HPA series) come from a stand-in exporter serving
fixed values under that exporter's names and labels here; tests/e2e/test_dashboard_cluster.py
proves the same panels against the real kube-state-metrics on the local cluster.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import worker_media as media
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from worker_kit import AUTH, b64, eventually, free_port, payload, queues, running_api, wait_state

from infra.config.model import load_stack_file
from infra.config.release_marks import read_marks
from infra.manifests.observability import dashboard as d
from infra.manifests.observability import panels as p
from infra.manifests.observability.monitors import prometheus_rule
from infra.manifests.observability.slo_rules import ERROR_BUDGET_REMAINING
from infra.manifests.worker_deployment import deployment_name
from infra.tools.release import history
from infra.tools.release.history import Entry
from infra.tools.release.stackfile import ReleaseState
from infra.tools.snapshot.harness import ROOT
from tests.servers import Prom
from worker import constants as c
from worker.settings import Settings

STABLE = {c.ENV_TRACK: c.TRACK_STABLE, c.ENV_RELEASE: "sha256-aaaaaaaaaaaa"}
CANARY = {c.ENV_TRACK: c.TRACK_CANARY, c.ENV_RELEASE: "sha256-bbbbbbbbbbbb"}
WINDOW = "10m"  # $__rate_interval: wider than the whole test, so rates cover every job


CLUSTER_PODS = {c.TRACK_STABLE: (2, 3), c.TRACK_CANARY: (1, 1)}  # (ready, desired) per Deployment
HPA_TARGET, HPA_CURRENT = 5, 3
REDIS_MAXMEMORY = 512 * 2**20  # set on the test's Redis for the test, then put back

#: The committed picture of the main panels (docs/dashboard.md); PREVIEW_WRITE_DASHBOARD_PNG=1 rewrites it.
PICTURE = ROOT / "docs" / "dashboard.png"
PICTURED = (p.JOBS_BY_OUTCOME, p.FAILURE_RATIO, p.JOB_DURATION, p.QUEUE_DEPTH, p.API_REQUESTS, p.RELEASE)


def substitute(expr: str, namespace: str, queue: str) -> str:
    return (
        expr.replace(f"${d.NAMESPACE}", namespace)
        .replace(f"${d.QUEUE}", queue)
        .replace("$__rate_interval", WINDOW)
    )


def own_outcomes(text: str) -> dict[str, float]:
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name + "_total" == c.METRIC_JOB_OUTCOMES
    ]
    found: dict[str, float] = {}
    for s in family.samples:
        if s.name == c.METRIC_JOB_OUTCOMES:  # summed over the reason label, as the panels sum
            found[s.labels[c.LABEL_OUTCOME]] = found.get(s.labels[c.LABEL_OUTCOME], 0.0) + s.value
    return found


async def requests(client: httpx.AsyncClient, job_id: str) -> None:
    """One API request of each status the panel splits (201, 400, 401): a counter series exists
    only from its first request on, and rate() counts increases after the first sample it sees."""
    dry = payload({"inline": b64(media.jpeg(16, 16))}, job_id, dryRun=True)
    assert (await client.post(f"{c.API_PATH_PREFIX}/job", json=dry)).status_code == 201
    assert (await client.post(f"{c.API_PATH_PREFIX}/job", json={"outputs": []})).status_code == 400
    no_token = await client.get(f"{c.API_PATH_PREFIX}/job/{job_id}/status", headers={"Authorization": ""})
    assert no_token.status_code == 401


@pytest.fixture
def cluster_exporter() -> Iterator[int]:
    """kube-state-metrics' series, with their names and labels, fixed values."""
    registry = CollectorRegistry()
    ready = Gauge("kube_deployment_status_replicas_ready", "", ["deployment"], registry=registry)
    spec = Gauge("kube_deployment_spec_replicas", "", ["deployment"], registry=registry)
    for track, (have, want) in CLUSTER_PODS.items():
        ready.labels(deployment_name(track)).set(have)
        spec.labels(deployment_name(track)).set(want)
    target = Gauge(
        "kube_horizontalpodautoscaler_spec_target_metric",
        "",
        ["horizontalpodautoscaler", "metric_name", "metric_target_type"],
        registry=registry,
    )
    target.labels(deployment_name(c.TRACK_STABLE), "s0-prometheus", "average").set(HPA_TARGET)
    current = Gauge(
        "kube_horizontalpodautoscaler_status_current_replicas",
        "",
        ["horizontalpodautoscaler"],
        registry=registry,
    )
    current.labels(deployment_name(c.TRACK_STABLE)).set(HPA_CURRENT)
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port
    server.shutdown()
    server.server_close()


@pytest.fixture
def redis_maxmemory(worker_env: dict[str, str]) -> Iterator[redis.Redis]:
    """The test's Redis with a maxmemory of :data:`REDIS_MAXMEMORY`, put back afterwards."""
    client = redis.Redis.from_url(worker_env[c.ENV_REDIS_URL])
    before = client.config_get("maxmemory")["maxmemory"]
    client.config_set("maxmemory", REDIS_MAXMEMORY)
    yield client
    client.config_set("maxmemory", before)
    client.close()


@pytest.fixture
def prom_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "prom"
    path.mkdir()
    yield path


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def picture(prom: Prom, namespace: str, queue: str, seconds: float, path: Path) -> None:
    """The main panels drawn with matplotlib from the same queries (rates over 5 s: the test is short)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 2, figsize=(12, 10))
    start = time.time() - seconds
    for ax, title in zip(axes.flat, PICTURED, strict=True):
        for template, expr in d.queries()[title]:
            query = substitute(expr, namespace, queue).replace(WINDOW, "5s")
            for series in prom.query_range(query, seconds):
                xs = [float(t) - start for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                ax.plot(xs, ys, label=legend(template, series["metric"]))
        ax.set_title(title)
        ax.set_xlabel("seconds")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.suptitle(f"{d.TITLE}: a test's real workers (stable, canary) and API")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


async def test_every_panel_query_answers_from_real_workers_and_api(
    spawn_worker: Any,
    settings: Settings,
    worker_env: dict[str, str],
    prom_dir: Path,
    cluster_exporter: int,
    redis_maxmemory: redis.Redis,
) -> None:
    started = time.monotonic()
    cfg = load_stack_file(ROOT / "Pulumi.prod.yaml")
    namespace, queue = cfg.namespace, worker_env[c.ENV_QUEUE_NAME]
    canary = spawn_worker(**CANARY)
    image = {"inline": b64(media.jpeg(64, 48))}
    corrupt = {"inline": b64(b"\xff\xd8\xff" + b"\x00junk" * 10)}
    async with running_api({**worker_env, **STABLE}) as api:
        rules = prometheus_rule(cfg, name="n", labels={})["spec"]["groups"]
        stable_port = free_port()
        ports = (canary.port, api.port, stable_port, cluster_exporter)
        # The SLO rules are loaded once a job has ended well: a 5m ratio recorded before any job is
        # 0/0, and that NaN would stay in the period's mean (the error budget) for the whole test.
        prom = Prom(prom_dir, [f"127.0.0.1:{port}" for port in ports], namespace, [])
        try:

            async def scraped(*ports: int) -> bool:
                try:
                    up = await asyncio.to_thread(prom.query, "up == 1")
                except httpx.HTTPError:  # not listening yet
                    assert prom.process.poll() is None, (prom_dir / "prometheus.log").read_text()
                    return False
                return {r["metric"]["instance"] for r in up} >= {f"127.0.0.1:{port}" for port in ports}

            # The canary's outcome series are all first seen at zero: rate() then extrapolates each of
            # them alike, so a ratio of its rates is exactly the ratio of its counts.
            await eventually(lambda: scraped(canary.port, api.port), timeout=30, every=0.2)
            base = f"http://127.0.0.1:{api.port}"
            async with httpx.AsyncClient(base_url=base, headers=AUTH) as client:
                await requests(client, "warm-up")
            async with queues(settings) as q:
                await wait_state(q, "warm-up", "completed", timeout=30)
            await asyncio.sleep(1.5)  # a few scrapes of the API's first counts: rate() sees every later one
            prom.load_rules(rules)

            # The canary alone first: its share of failures is ours to cause.
            async with queues(settings) as q:
                await q.enqueue(payload(image, "canary-ok"))
                await q.enqueue(payload(corrupt, "canary-bad-1"))
                await q.enqueue(payload(corrupt, "canary-bad-2"))
                for job, state in (
                    ("canary-ok", "completed"),
                    ("canary-bad-1", "failed"),
                    ("canary-bad-2", "failed"),
                ):
                    await wait_state(q, job, state, timeout=30)
            stable = spawn_worker(**STABLE, PREVIEW_METRICS_PORT=str(stable_port))
            await eventually(lambda: scraped(stable.port), timeout=30, every=0.2)
            await asyncio.sleep(1.5)
            async with httpx.AsyncClient(base_url=base, headers=AUTH) as client:
                for i in range(3):
                    assert (
                        await client.post(f"{c.API_PATH_PREFIX}/job", json=payload(image, f"api-{i}"))
                    ).status_code == 201
                dry = payload(image, "api-dry", dryRun=True)
                assert (await client.post(f"{c.API_PATH_PREFIX}/job", json=dry)).status_code == 201
                assert (
                    await client.post(f"{c.API_PATH_PREFIX}/job", json={"outputs": []})
                ).status_code == 400
                no_token = await client.get(
                    f"{c.API_PATH_PREFIX}/job/api-0/status", headers={"Authorization": ""}
                )
                assert no_token.status_code == 401
            async with queues(settings) as q:
                await q.main.add(c.JOB_NAME, {"outputs": []}, {"jobId": "invalid"})  # the producer's mistake
                for job in ("warm-up", "api-0", "api-1", "api-2", "api-dry"):
                    await wait_state(q, job, "completed", timeout=30)
                await wait_state(q, "invalid", "failed", timeout=30)

            async with httpx.AsyncClient() as client:
                texts = {
                    track: (await client.get(f"http://127.0.0.1:{port}{c.METRICS_PATH}")).text
                    for track, port in ((c.TRACK_CANARY, canary.port), (c.TRACK_STABLE, stable_port))
                }
            own = {track: own_outcomes(text) for track, text in texts.items()}
            finished = {t: sum(o[x] for x in c.FINISHED_OUTCOMES) for t, o in own.items()}
            assert sum(finished.values()) == 9 and own[c.TRACK_CANARY]["failed"] >= 2
            await asyncio.sleep(2)  # the last counts scraped

            def run(title: str) -> list[list[dict[str, Any]]]:
                return [prom.query(substitute(e, namespace, queue)) for _, e in d.queries()[title]]

            def by(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
                return {tuple(r["metric"].get(x, "") for x in labels): float(r["value"][1]) for r in result}

            async def answered(title: str, check: Any) -> bool:
                results = await asyncio.to_thread(run, title)
                try:
                    check(results)
                except AssertionError:
                    return False
                return True

            def jobs(results: list[list[dict[str, Any]]]) -> None:
                (rates,) = results
                series = by(rates, c.LABEL_TRACK, c.LABEL_OUTCOME)
                assert set(series) == {(t, o) for t in c.TRACKS for o in c.OUTCOMES}
                assert series[(c.TRACK_CANARY, "failed")] > 0 and all(v >= 0 for v in series.values())

            def failure(results: list[list[dict[str, Any]]]) -> None:
                (ratio,) = results
                series = by(ratio, c.LABEL_TRACK)
                for track, counts in own.items():
                    if finished[track]:
                        assert math.isclose(
                            series[(track,)], counts["failed"] / finished[track], rel_tol=1e-6
                        )

            def duration(results: list[list[dict[str, Any]]]) -> None:
                for result in results:
                    values = by(result, c.LABEL_TRACK)
                    assert values[(c.TRACK_CANARY,)] >= 0 and not math.isnan(values[(c.TRACK_CANARY,)])
                p50, p95, p99 = (by(r, c.LABEL_TRACK)[(c.TRACK_CANARY,)] for r in results)
                assert p50 <= p95 <= p99

            def depth(results: list[list[dict[str, Any]]]) -> None:
                states, target = results
                assert set(by(states, c.LABEL_STATE)) == {(s,) for s in c.QUEUE_STATES if s != c.STATE_DLQ}
                assert [float(r["value"][1]) for r in target] == [HPA_TARGET * HPA_CURRENT]

            def pods(results: list[list[dict[str, Any]]]) -> None:
                ready, desired, reporting = results
                names = {deployment_name(t): pods for t, pods in CLUSTER_PODS.items()}
                assert by(ready, "deployment") == {(n,): float(have) for n, (have, _) in names.items()}
                assert by(desired, "deployment") == {(n,): float(want) for n, (_, want) in names.items()}
                assert by(reporting, c.LABEL_TRACK) == {(c.TRACK_STABLE,): 1.0, (c.TRACK_CANARY,): 1.0}

            dlq_jobs = sum(o["dlq"] for o in own.values())

            def dlq(results: list[list[dict[str, Any]]]) -> None:
                size, growth, per_track = results
                assert [float(r["value"][1]) for r in size] == [dlq_jobs]
                assert [float(r["value"][1]) >= 0 for r in growth] == [True]
                # By reason: the canary's corrupt images are render errors.
                assert by(per_track, c.LABEL_TRACK, c.LABEL_REASON)[(c.TRACK_CANARY, c.REASON_RENDER)] > 0

            def api_panel(results: list[list[dict[str, Any]]]) -> None:
                rates, errors, unauthorized, p95 = results
                assert {s for (_, s) in by(rates, c.LABEL_TRACK, c.LABEL_STATUS)} >= {"201", "400", "401"}
                # 2 of the 6 requests after the warm-up were 4xx (Prometheus's scrapes of /metrics left out).
                assert math.isclose(by(errors, c.LABEL_TRACK)[(c.TRACK_STABLE,)], 2 / 6, rel_tol=1e-6)
                assert by(unauthorized, c.LABEL_TRACK)[(c.TRACK_STABLE,)] > 0
                assert by(p95, c.LABEL_TRACK)[(c.TRACK_STABLE,)] > 0

            def release(results: list[list[dict[str, Any]]]) -> None:
                tracks, weight = results
                assert by(tracks, c.LABEL_TRACK, c.LABEL_RELEASE) == {
                    (c.TRACK_STABLE, STABLE[c.ENV_RELEASE]): 1.0,
                    (c.TRACK_CANARY, CANARY[c.ENV_RELEASE]): 1.0,
                }
                assert [float(r["value"][1]) for r in weight] == [0.5]

            def budget(results: list[list[dict[str, Any]]]) -> None:
                (remaining,) = results
                assert remaining and all(float(r["value"][1]) <= 1 for r in remaining)

            checks = {
                p.JOBS_BY_OUTCOME: jobs,
                p.FAILURE_RATIO: failure,
                p.JOB_DURATION: duration,
                p.QUEUE_DEPTH: depth,
                p.PODS: pods,
                p.DLQ: dlq,
                p.API_REQUESTS: api_panel,
                p.RELEASE: release,
                p.ERROR_BUDGET: budget,
            }

            def redis_memory(results: list[list[dict[str, Any]]]) -> None:
                # The workers read INFO memory each housekeeping round: near what Redis says now.
                used_now = int(redis_maxmemory.info("memory")["used_memory"])
                (budget,), (limit,) = results
                used = float(budget["value"][1]) * c.REDIS_BUDGET_BYTES_DEFAULT
                assert used_now / 2 < used < used_now * 2, (used, used_now)
                assert math.isclose(float(limit["value"][1]) * REDIS_MAXMEMORY, used, rel_tol=1e-9)

            checks[p.REDIS_BUDGET] = redis_memory
            assert set(checks) == set(p.PANELS)
            for title, check in checks.items():
                try:
                    await eventually(lambda t=title, k=check: answered(t, k), timeout=20, every=0.5)
                except Exception:
                    check(await asyncio.to_thread(run, title))  # fails with the check's own message
                    raise
            annotations = prom.query(substitute(d.RELEASE_ANNOTATION, namespace, queue))
            assert {r["metric"][c.LABEL_RELEASE] for r in annotations} == {
                STABLE[c.ENV_RELEASE],
                CANARY[c.ENV_RELEASE],
            }
            assert ERROR_BUDGET_REMAINING in d.queries()[p.ERROR_BUDGET][0][1]
            drawn = prom_dir / "dashboard.png"
            seconds = time.monotonic() - started
            await asyncio.to_thread(picture, prom, namespace, queue, seconds, drawn)
            assert drawn.stat().st_size > 10_000
            if os.environ.get("PREVIEW_WRITE_DASHBOARD_PNG") == "1":
                shutil.copyfile(drawn, PICTURE)
        finally:
            prom.stop()


def test_the_history_annotation_marks_each_release_at_its_time(tmp_path: Path) -> None:
    """The release tool's history (written by its own writer) read as the program reads it, and the
    annotation query evaluated by a real Prometheus over the last minutes: one series per release,
    starting at its recorded time and ending at the next release's."""
    now = int(time.time())
    times = {"r-20261207-01": now - 170, "r-20261207-02": now - 95, "r-20261207-03": now - 40}
    actions = {"r-20261207-01": "promote", "r-20261207-02": "promote", "r-20261207-03": "rollback"}
    state = ReleaseState(image=None, canary=None, release_id=None)
    for rid, at in times.items():
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        entry = Entry(rid, "prod", actions[rid], stamp, "A <a@example.com>", state, state)
        history.append(tmp_path, entry)
    marks = read_marks(tmp_path, "prod")
    assert [(m.id, m.action, m.epoch) for m in marks] == [(r, actions[r], t) for r, t in times.items()]
    expr = d.history_annotation(marks)
    assert expr is not None
    (tmp_path / "prom").mkdir()
    prom = Prom(tmp_path / "prom", [], "none", [])
    try:
        step = 5
        end = time.time()

        def ranged() -> list[dict[str, Any]]:
            params = {"query": expr, "start": end - 200, "end": end, "step": step}
            body = httpx.get(f"{prom.url}/api/v1/query_range", params=params, timeout=10).json()
            assert body["status"] == "success", body
            result: list[dict[str, Any]] = body["data"]["result"]
            return result

        deadline = time.monotonic() + 30
        while True:
            try:
                result = ranged()
                break
            except (httpx.HTTPError, ValueError):  # still starting (503 in plain text)
                assert time.monotonic() < deadline and prom.process.poll() is None
                time.sleep(0.2)
    finally:
        prom.stop()
    spans = {
        r["metric"][d.LABEL_RELEASE_ID]: (
            r["metric"][d.LABEL_ACTION],
            float(r["values"][0][0]),
            float(r["values"][-1][0]),
        )
        for r in result
    }
    assert set(spans) == set(times)
    ordered = list(times.values())
    for (rid, at), after in zip(times.items(), [*ordered[1:], None], strict=True):
        action, first, last = spans[rid]
        assert action == actions[rid]
        assert at <= first < at + step  # Grafana marks the release at the series' first sample
        assert last < after if after else last >= end - step

"""`promtool check metrics` on real scrapes: a `python -m worker run` process after real jobs of
several outcomes, and a `python -m worker api` process after real requests (201, 400, 401).

Each scrape must be clean (promtool's lint prints nothing), show exactly the families
`worker/metrics.py` declares (so docs/metrics.md, generated from them, lists every series), and
carry the process's `track` and `release` on every series.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from typing import Any

import httpx
import worker_media as media
from prometheus_client.parser import text_string_to_metric_families
from worker_kit import AUTH, b64, eventually, payload, queues, running_api, wait_state

from worker import constants as c
from worker.metrics import ApiMetrics, Metrics
from worker.metrics_doc import exposed_name
from worker.settings import Settings

OWN = {c.ENV_TRACK: c.TRACK_CANARY, c.ENV_RELEASE: "sha256-0123456789ab"}


def promtool_check(text: str) -> str:
    """promtool's findings on ``text`` (empty when clean); fails on a non-zero exit."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package (deps/apt-base.txt)"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """``{family: [(sample, labels, value)]}`` of a scrape, counters named with ``_total``."""
    found: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        found[name] = [(s.name, s.labels, s.value) for s in family.samples]
    return found


def assert_own_labels(found: dict[str, list[tuple[str, dict[str, str], float]]]) -> None:
    for name, samples in found.items():
        for _, labels, _ in samples:
            assert labels[c.LABEL_TRACK] == c.TRACK_CANARY, name
            assert labels[c.LABEL_RELEASE] == OWN[c.ENV_RELEASE], name


async def test_a_real_worker_scrape_is_clean_and_lists_the_declared_series(
    spawn_worker: Any, settings: Settings
) -> None:
    worker = spawn_worker(**OWN)
    image = {"inline": b64(media.jpeg(64, 48))}
    corrupt = {"inline": b64(b"\xff\xd8\xff" + b"\x00junk" * 10)}
    async with queues(settings) as q:
        await q.enqueue(payload(image, "scrape-done"))
        await q.enqueue(payload(image, "scrape-dry", dryRun=True))
        await q.enqueue(payload(corrupt, "scrape-bad"))  # a render error: failed, dead-lettered
        await q.main.add(c.JOB_NAME, {"outputs": []}, {"jobId": "scrape-invalid"})  # the producer's mistake
        await wait_state(q, "scrape-done", "completed", timeout=30)
        await wait_state(q, "scrape-dry", "completed", timeout=30)
        await wait_state(q, "scrape-bad", "failed", timeout=30)
        await wait_state(q, "scrape-invalid", "failed", timeout=30)

    async def scraped() -> str:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{worker.port}{c.METRICS_PATH}")).text
        outcomes = {
            (s[1][c.LABEL_OUTCOME], s[1][c.LABEL_REASON]): s[2]
            for s in families(text).get(c.METRIC_JOB_OUTCOMES, [])
            if s[0] == c.METRIC_JOB_OUTCOMES
        }
        # Each outcome with the class of error it ended with: the corrupt image a render error,
        # the producer's mistake invalid, the jobs that ended well none.
        done = {
            ("completed", "none"): 1.0,
            ("dryrun", "none"): 1.0,
            ("failed", "render"): 1.0,
            ("dlq", "render"): 1.0,
            ("failed", "invalid"): 1.0,
            ("dlq", "invalid"): 1.0,
            ("invalid", "invalid"): 1.0,
        }
        return text if {o: outcomes.get(o) for o in done} == done else ""

    text = await eventually(scraped, timeout=15)
    assert await asyncio.to_thread(promtool_check, text) == ""
    found = families(text)
    assert set(found) == {exposed_name(f) for f in Metrics(c.TRACK_STABLE).declared}
    assert_own_labels(found)
    taken = [v for name, _, v in found[c.METRIC_JOBS_TAKEN] if name == c.METRIC_JOBS_TAKEN]
    assert taken == [4.0]  # jobs taken, once each: no other counter repeats the outcomes


async def test_a_real_api_scrape_is_clean_and_lists_the_declared_series(worker_env: dict[str, str]) -> None:
    job = payload({"inline": b64(media.jpeg(16, 16))}, "api-scrape")
    async with running_api({**worker_env, **OWN}) as api:
        base = f"http://127.0.0.1:{api.port}"
        async with httpx.AsyncClient(base_url=base, headers=AUTH) as client:
            assert (await client.post(f"{c.API_PATH_PREFIX}/job", json=job)).status_code == 201
            assert (await client.post(f"{c.API_PATH_PREFIX}/job", json={"outputs": []})).status_code == 400
            no_token = await client.get(
                f"{c.API_PATH_PREFIX}/job/api-scrape/status", headers={"Authorization": ""}
            )
            assert no_token.status_code == 401
            text = (await client.get(c.METRICS_PATH)).text
    assert await asyncio.to_thread(promtool_check, text) == ""
    found = families(text)
    assert set(found) == {exposed_name(f) for f in ApiMetrics(c.TRACK_STABLE).declared}
    assert_own_labels(found)
    statuses = {
        labels[c.LABEL_STATUS]: v
        for name, labels, v in found[c.METRIC_API_REQUESTS]
        if name == c.METRIC_API_REQUESTS
    }
    assert statuses == {"201": 1.0, "400": 1.0, "401": 1.0}

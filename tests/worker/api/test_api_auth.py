"""The job API's bearer tokens: every route with no token, a wrong one, a rotated one and a valid one.

Against a real Redis (and the real consumer for artifacts). Health and /metrics stay open for
probes and Prometheus; everything else needs a token. A real ``python -m worker api`` refuses
to start without one unless ``PREVIEW_API_AUTH=off``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from api_kit import JOB
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from worker_kit import consumer, free_port, served, wait_state
from worker_kit import queues as open_queues

from worker import constants as c
from worker.api import auth
from worker.api.app import AuthNotConfiguredError, create_app
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[3]
OLD, NEW = "old-token-0123456789abcdef", "new-token-fedcba9876543210"
READER, WRITER = "reader-token-0123456789ab", "writer-token-0123456789ab"
TOKENS = f"{OLD}, {NEW},read:{READER},enqueue:{WRITER}"


@asynccontextmanager
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with served(create_app(settings.model_copy(update={"api_tokens": auth_secret(TOKENS)}))) as client:
        yield client


def auth_secret(text: str) -> SecretStr:
    return SecretStr(text)


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def prepared_job(settings: Settings) -> str:
    """A completed job with artifacts, so every read route has something to return."""
    async with api(settings) as client, consumer(settings), open_queues(settings) as q:
        posted = await client.post("/api/preview/job", json={**JOB, "jobId": "auth-1"}, headers=bearer(NEW))
        assert posted.status_code == 201, posted.text
        await wait_state(q, "auth-1", "completed")
    return "auth-1"


ROUTES = [
    ("GET", "/api/preview/job/auth-1/status", auth.SCOPE_READ),
    ("GET", "/api/preview/job/auth-1/artifact", auth.SCOPE_READ),
    ("GET", "/api/preview/job/auth-1/artifact/thumb", auth.SCOPE_READ),
    ("GET", "/api/preview/queue/metrics", auth.SCOPE_READ),
    ("POST", "/api/preview/job", auth.SCOPE_ENQUEUE),
]


async def call(client: httpx.AsyncClient, method: str, path: str, token: str | None) -> httpx.Response:
    if method == "POST":
        return await client.post(
            path, json={**JOB, "jobId": f"auth-{token or 'none'}"[:60]}, headers=bearer(token)
        )
    return await client.get(path, headers=bearer(token))


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_every_route_needs_a_valid_token(
    settings: Settings, method: str, path: str, scope: str
) -> None:
    await prepared_job(settings)
    async with api(settings) as client:
        for token in (None, "wrong-token-0123456789abc", f"{NEW}x", NEW[:-1]):
            reply = await call(client, method, path, token)
            assert reply.status_code == 401, (token, reply.text)
            assert reply.json() == {"error": "missing or invalid bearer token"}
            assert reply.headers["www-authenticate"] == 'Bearer realm="preview-api"'
        for token in (OLD, NEW):  # both are valid while clients rotate from one to the other
            reply = await call(client, method, path, token)
            assert reply.status_code in (200, 201, 307), (token, reply.text)
        scoped_ok, scoped_no = (READER, WRITER) if scope == auth.SCOPE_READ else (WRITER, READER)
        assert (await call(client, method, path, scoped_ok)).status_code in (200, 201, 307)
        refused = await call(client, method, path, scoped_no)
        assert (refused.status_code, refused.json()) == (403, {"error": f"this token may not {scope}"})


async def test_health_and_metrics_stay_open_and_401s_are_counted(settings: Settings) -> None:
    async with api(settings) as client:
        assert (await client.get(c.API_HEALTH_PATH)).status_code == 200
        for _ in range(3):
            assert (await client.get("/api/preview/queue/metrics")).status_code == 401
        text = (await client.get(c.METRICS_PATH)).text
    counted = [
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == c.METRIC_API_REQUESTS.removesuffix("_total")
        for s in family.samples
        if s.name.endswith("_total") and s.labels["status"] == "401"
    ]
    assert sum(counted) == 3


async def test_a_rejected_enqueue_writes_nothing(settings: Settings) -> None:
    async with api(settings) as client, open_queues(settings) as q:
        reply = await client.post(
            "/api/preview/job", json={**JOB, "jobId": "never"}, headers=bearer("x" * 20)
        )
        assert reply.status_code == 401
        assert await q.get("never") is None


def test_no_token_means_no_app(settings: Settings) -> None:
    with pytest.raises(AuthNotConfiguredError, match="PREVIEW_API_TOKENS is empty"):
        create_app(settings.model_copy(update={"api_tokens": auth_secret("")}))


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ("short", "entry 1: a token is 16-512 of"),
        (f"{OLD},admin:{NEW}", "entry 2: scope must be read or enqueue"),
        (f"{OLD},{OLD}", "a token is listed twice"),
        (f"{OLD},has space in it 0123", "entry 2: a token is"),
    ],
)
def test_bad_token_lists_are_refused_without_echoing_them(tokens: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        auth.parse_tokens(tokens)
    assert OLD not in str(info.value) and NEW not in str(info.value)


def run_api(env: dict[str, str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker", "api"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def test_the_api_process_refuses_to_start_without_tokens(worker_env: dict[str, str]) -> None:
    env = {**os.environ, **worker_env, c.ENV_API_TOKENS: "", c.ENV_API_PORT: str(free_port())}
    done = run_api(env)
    assert done.returncode == 2
    assert "refusing to start: PREVIEW_API_TOKENS is empty" in done.stderr
    bad = run_api({**env, c.ENV_API_TOKENS: f"{OLD},short"})
    assert bad.returncode == 2 and "entry 2" in bad.stderr and OLD not in bad.stderr


def test_auth_off_is_explicit_and_logged(worker_env: dict[str, str]) -> None:
    env = {
        **os.environ,
        **worker_env,
        c.ENV_API_TOKENS: "",
        c.ENV_API_AUTH: "off",
        c.ENV_API_PORT: str(free_port()),
    }
    argv = [sys.executable, "-m", "worker", "api"]
    out = subprocess.PIPE
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and "authentication is OFF" not in line:
            line = proc.stdout.readline()
        assert "job API authentication is OFF (PREVIEW_API_AUTH=off)" in line
    finally:
        proc.terminate()
        proc.communicate(timeout=30)

"""Secret env vars from a mounted Secret (``PREVIEW_SECRETS_DIR``) and their rotation, on real processes.

The folder is written the way the kubelet updates a Secret volume (``tests.servers.project_secret``).
A rotated API token reaches a running ``python -m worker api`` within a poll or two; a rotated
``REDIS_URL`` (a new Redis ACL user) reaches a running ``python -m worker run`` while jobs flow,
and every job added before, during and after the rotation completes exactly once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from bullmq import Queue
from worker_kit import payload

from bench.run_suite import tiny_png
from infra.tools.local.cluster.kube import wait_until
from tests.servers import RedisServer, bearer_status, free_port, project_secret
from worker import constants as c
from worker.process import secret_files

REPO = Path(__file__).resolve().parents[3]
OLD, NEW = "rotation-token-old-0001", "rotation-token-new-0002"
QUEUE_METRICS = "/api/preview/queue/metrics"


def test_read_takes_secret_env_vars_only_and_names_a_bad_file_never_its_content(tmp_path: Path) -> None:
    project_secret(tmp_path, {c.ENV_API_TOKENS: OLD + "\n", "UNRELATED": "x", c.ENV_REDIS_URL: "redis://h"})
    assert secret_files.read(tmp_path) == {c.ENV_API_TOKENS: OLD, c.ENV_REDIS_URL: "redis://h"}
    project_secret(tmp_path, {c.ENV_API_TOKENS: "s3cret" * 20_000})
    with pytest.raises(secret_files.SecretFileError) as info:
        secret_files.read(tmp_path)
    assert (
        str(info.value) == f"{tmp_path / c.ENV_API_TOKENS}: larger than {secret_files.MAX_FILE_BYTES} bytes"
    )
    (tmp_path / "..data" / c.ENV_API_TOKENS).write_bytes(b"\xff\xfe s3cret")
    with pytest.raises(secret_files.SecretFileError, match=r"not UTF-8$"):
        secret_files.read(tmp_path)


def test_invalid_rotated_values_are_refused_with_the_key_named(tmp_path: Path) -> None:
    project_secret(tmp_path, {c.ENV_REDIS_URL: "redis://127.0.0.1:6379"})
    watcher = secret_files.Watcher(tmp_path, secret_files.read(tmp_path))
    project_secret(tmp_path, {c.ENV_REDIS_URL: "http://user:hunter2@example"})
    assert secret_files.problems(secret_files.read(tmp_path)) == [
        f"invalid setting {c.ENV_REDIS_URL}=<redacted>: Value error, "
        "must be a redis://, rediss://, unix:// or redis+sentinel:// URL"
    ]
    assert watcher.check() is False  # refused: no stop is asked for
    assert not watcher.rotated.is_set()


def spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        full = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        return subprocess.Popen(
            [sys.executable, "-m", "worker", command], cwd=REPO, env=full, stdout=out, stderr=out
        )


def test_a_rotated_api_token_reaches_the_running_api(worker_env: dict[str, str], tmp_path: Path) -> None:
    secrets, log, port = tmp_path / "secrets", tmp_path / "api.log", free_port()
    project_secret(secrets, {c.ENV_API_TOKENS: OLD})
    env = {**worker_env, c.ENV_SECRETS_DIR: str(secrets), c.ENV_API_PORT: str(port)}
    del env[c.ENV_API_TOKENS]  # only the file has it
    api = spawn("api", env, log)
    url = f"http://127.0.0.1:{port}{QUEUE_METRICS}"
    try:
        wait_until(
            lambda: bearer_status(url, OLD) == 200, "the API with the old token", 40, lambda: tail(log)
        )
        project_secret(secrets, {c.ENV_API_TOKENS: "not a token"})  # refused: the old one stays
        time.sleep(3 * secret_files.POLL_SECONDS)
        assert (bearer_status(url, OLD), api.poll()) == (200, None)
        project_secret(secrets, {c.ENV_API_TOKENS: NEW})
        wait_until(
            lambda: bearer_status(url, NEW) == 200, "the API with the new token", 40, lambda: tail(log)
        )
        assert bearer_status(url, OLD) == 401
        assert api.poll() is None  # the same process (re-executed in place), never a crash
        text = log.read_text()
        assert "secrets rotated" in text and "rotated secret refused" in text
        assert NEW not in text and OLD not in text and "not a token" not in text
    finally:
        api.terminate()
        api.wait(30)


def tail(log: Path) -> str:
    return log.read_text()[-4000:]


async def add_jobs(url: str, queue: str, prefix: str, count: int, gap: float) -> list[str]:
    q = Queue(queue, {"connection": url, "prefix": c.BULL_PREFIX})
    ids = []
    try:
        for i in range(count):
            job = payload({"inline": tiny_png()}, f"{prefix}{i}", dryRun=True)
            await q.add(c.JOB_NAME, job, {"jobId": job["jobId"]})
            ids.append(job["jobId"])
            await asyncio.sleep(gap)
    finally:
        await q.close()
    return ids


def test_a_rotated_redis_user_reaches_the_running_worker_and_loses_no_job(
    worker_env: dict[str, str], redis_server: RedisServer, queue_name: str, tmp_path: Path
) -> None:
    admin = redis_server.client()
    for user, password in (("worker-a", "pass-a-0001"), ("worker-b", "pass-b-0002")):
        admin.execute_command("ACL", "SETUSER", user, "reset", "on", f">{password}", "~*", "&*", "+@all")
    url_of = {u: f"redis://{u}:{p}@127.0.0.1:{redis_server.port}" for u, p in
              (("worker-a", "pass-a-0001"), ("worker-b", "pass-b-0002"))}  # fmt: skip
    secrets, log = tmp_path / "secrets", tmp_path / "worker.log"
    project_secret(secrets, {c.ENV_REDIS_URL: url_of["worker-a"]})
    env = {**worker_env, c.ENV_SECRETS_DIR: str(secrets)}
    del env[c.ENV_REDIS_URL]
    worker = spawn("run", env, log)
    try:
        wait_until(
            lambda: "worker-a" in {cl.get("user") for cl in admin.client_list()},
            "worker as worker-a",
            40,
            log,
        )

        async def flow() -> list[str]:
            adding = asyncio.create_task(add_jobs(redis_server.url, queue_name, "rot-", 60, 0.05))
            await asyncio.sleep(0.5)
            project_secret(secrets, {c.ENV_REDIS_URL: url_of["worker-b"]})
            return await adding

        ids = asyncio.run(flow())
        wait_until(lambda: {cl.get("user") for cl in admin.client_list()} >= {"worker-b"}
             and "worker-a" not in {cl.get("user") for cl in admin.client_list()},
             "worker as worker-b only", 40, lambda: tail(log))  # fmt: skip
        admin.execute_command("ACL", "DELUSER", "worker-a")  # the old credential is revoked
        more = asyncio.run(add_jobs(redis_server.url, queue_name, "after-", 10, 0.0))
        done = redis.Redis(port=redis_server.port, password=None, decode_responses=True)
        key = f"{c.BULL_PREFIX}:{queue_name}:completed"
        wait_until(
            lambda: done.zcard(key) == len(ids) + len(more), "every job completed", 60, lambda: tail(log)
        )
        assert set(done.zrange(key, 0, -1)) == set(ids + more)  # each exactly once, none failed
        assert done.zcard(f"{c.BULL_PREFIX}:{queue_name}:failed") == 0
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(30)

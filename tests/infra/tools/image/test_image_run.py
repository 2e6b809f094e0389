"""Run the pushed image (podman) against a loopback Redis: one real preview job, end to end.

Two containers from the same image: the default command (``run``, the queue worker) and
``api`` (the job API). Both run with a read-only root filesystem and the image's own user;
the job is produced with the Python BullMQ client exactly as a Node.js producer would.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bullmq import Queue
from image_testkit import Podman
from PIL import Image

from infra.tools.image import buildah, publish, registry_server
from tests.servers import RedisServer
from worker import constants as c

pytestmark = pytest.mark.timeout(600)
JOB_ID = "image-e2e-1"
QUEUE = "image-e2e"
API = "/api/preview"


def _jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buf, "JPEG")
    return buf.getvalue()


#: The API in the image refuses to start without a bearer token.
TOKEN = "image-test-token-0123456789"


def _http_json(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.load(resp)


async def _enqueue(redis_url: str, body: dict[str, Any]) -> None:
    queue = Queue(QUEUE, {"connection": redis_url, "prefix": c.BULL_PREFIX})
    try:
        await queue.add(c.JOB_NAME, body, {"jobId": JOB_ID, "attempts": 1})
    finally:
        await queue.close()


def _wait_for(probe: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


@pytest.fixture(scope="module")
def running(
    built: publish.Result,
    local_registry: registry_server.Registry,
    storage: buildah.Storage,
    image_tmp: Path,
) -> Iterator[dict[str, Any]]:
    """The pushed image pulled by digest and started twice: worker and API."""
    podman = Podman(storage)
    podman("pull", "--quiet", "--tls-verify=false", built.reference)
    (image_tmp / "redis").mkdir()
    redis_server = RedisServer(image_tmp / "redis")
    redis_server.start()
    data = image_tmp / "data"
    data.mkdir()
    os.chown(data, 10001, 10001)  # the volume is writable by the image's user only
    api_port, metrics_port = registry_server.free_port(), registry_server.free_port()
    env = {c.ENV_REDIS_URL: redis_server.url, c.ENV_QUEUE_NAME: QUEUE, c.ENV_DRAIN_SECONDS: "2"}
    volume = f"{data}:/data"
    worker_env = {**env, c.ENV_METRICS_PORT: str(metrics_port)}
    podman.run_detached("preview-worker", built.reference, worker_env, volume)
    api_env = {**env, c.ENV_API_HOST: "127.0.0.1", c.ENV_API_PORT: str(api_port), c.ENV_API_TOKENS: TOKEN}
    podman.run_detached("preview-api", built.reference, api_env, volume, "api")
    try:
        yield {"podman": podman, "redis": redis_server, "data": data, "api": f"http://127.0.0.1:{api_port}"}
    finally:
        for name in ("preview-worker", "preview-api"):
            podman("stop", "--time", "10", name, check=False)
        logs = {name: podman("logs", name, check=False) for name in ("preview-worker", "preview-api")}
        print(json.dumps(logs, indent=1))
        podman("rm", "--force", "preview-worker", "preview-api", check=False)
        redis_server.stop()


async def test_image_processes_a_preview_job(running: dict[str, Any]) -> None:
    api = running["api"]
    _wait_for(lambda: _http_json(f"{api}{c.API_HEALTH_PATH}"), "API health")
    body = {
        "jobId": JOB_ID,
        "source": {"inline": base64.b64encode(_jpeg(400, 300)).decode()},
        "outputs": [{"name": "thumb", "format": "webp", "width": 100, "height": 100}],
    }
    await _enqueue(running["redis"].url, body)

    status = _wait_for(
        lambda: (s := _http_json(f"{api}{API}/job/{JOB_ID}/status"))["state"] == "completed" and s,
        "job completed",
    )
    assert status["attemptsMade"] == 1
    artifact = _http_json(f"{api}{API}/job/{JOB_ID}/artifact")
    [rendition] = artifact["renditions"]
    assert (rendition["name"], rendition["width"], rendition["height"]) == ("thumb", 100, 75)
    with urllib.request.urlopen(
        urllib.request.Request(rendition["url"], headers={"Authorization": f"Bearer {TOKEN}"}), timeout=5
    ) as resp:
        image = Image.open(io.BytesIO(resp.read()))
    assert (image.format, image.size) == ("WEBP", (100, 75))
    # Written by the worker container into the volume, as the image's user.
    written = running["data"] / JOB_ID / "thumb.webp"
    assert (written.stat().st_uid, written.stat().st_gid) == (10001, 10001)


def test_both_processes_run_as_the_fixed_non_root_user(running: dict[str, Any]) -> None:
    for name in ("preview-worker", "preview-api"):
        assert running["podman"].uids(name) == [10001] * 4


def test_root_filesystem_is_not_written(running: dict[str, Any]) -> None:
    podman = running["podman"]
    for name in ("preview-worker", "preview-api"):
        assert podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", name).strip() == "true"
        assert podman("diff", name).strip() == ""

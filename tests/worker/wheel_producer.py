"""A producer that has only the installed ``mobius-preview-client`` wheel: run by
``test_client_wheel.py`` with a fresh venv's interpreter (``python -I``, outside the repository).

Argument: a JSON file with ``redis_url``, ``queue``, ``idle_queue`` and ``jobs`` (three payloads).
Prints one JSON document of what it saw.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
from typing import Any

import mobius_preview_client
from mobius_preview_client import AsyncPreviewClient, PreviewClient


def finished(done: dict[str, Any]) -> dict[str, Any]:
    """The parts of a status document the test checks, and how long after the job's end ``wait`` returned."""
    late_ms = time.time() * 1000 - done["finishedOn"]
    return {"state": done["state"], "result": done["result"], "late_ms": late_ms}


def counted(client: AsyncPreviewClient) -> list[str]:
    """Every command the client's Redis connection pool sends from now on (wait's, bullmq's scripts')."""
    sent: list[str] = []
    execute = client.redis.execute_command

    async def counting(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await execute(*args, **options)

    client.redis.execute_command = counting  # type: ignore[method-assign]
    return sent


async def run_async(spec: dict[str, Any]) -> dict[str, Any]:
    async with AsyncPreviewClient(spec["redis_url"], queue_name=spec["queue"]) as client:
        job = await client.enqueue(spec["jobs"][1])
        done = finished(await client.wait(job.job_id, timeout=60))
    # Nobody consumes the idle queue: a wait that times out shows what waiting costs.
    async with AsyncPreviewClient(spec["redis_url"], queue_name=spec["idle_queue"]) as idle:
        job = await idle.enqueue(spec["jobs"][2])
        sent = counted(idle)
        started = time.monotonic()
        try:
            await idle.wait(job.job_id, timeout=1.5)
            timed_out = None
        except TimeoutError as err:
            timed_out = str(err)
        waited = time.monotonic() - started
    return {"done": done, "idle_commands": sent, "idle_waited": waited, "timed_out": timed_out}


def main() -> None:
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    env = {"REDIS_URL": spec["redis_url"], "PREVIEW_QUEUE_NAME": spec["queue"]}
    with PreviewClient.from_env(env) as client:
        job = client.enqueue(spec["jobs"][0])
        again = client.enqueue(spec["jobs"][0])
        sync_done = finished(client.wait(job.job_id, timeout=60))
    report = {
        "python": list(sys.version_info[:2]),
        "package": mobius_preview_client.__file__,
        "worker_importable": importlib.util.find_spec("worker") is not None,
        "sync": {"created": [job.created, again.created], **sync_done},
        "async": asyncio.run(run_async(spec)),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()

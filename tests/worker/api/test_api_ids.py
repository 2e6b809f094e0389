"""One id check guards every route and client method that takes an id (issue 30, item 5 and Also).

Before, ``GET …/job/events/status`` (and ``id``, ``completed``, ``stalled-check``) answered 500
(Redis WRONGTYPE), ``…/job/meta/status`` 200 with a job made up from the queue's meta hash, and
ids like ``<job>:lock`` read a job's lock. A 404 echoed the id whole (up to 64 KB), and a
trailing slash got a 307 whose absolute Location came from the Host header, before auth.
"""

from __future__ import annotations

import pytest
from api_kit import JOB, api
from worker_kit import consumer, eventually, queues

from mobius_preview_client import AsyncPreviewClient
from mobius_preview_client.contract import jobid
from worker.settings import Settings

ROUTES = ("status", "artifact", "artifact/thumb")
#: Every key of the queue, and the per-job keys next to a real job's hash.
IDS = [*sorted(jobid.QUEUE_KEY_SUFFIXES), "ids-1:lock", "ids-1:logs", "ids-1:processed", "metrics:completed"]


async def test_every_route_refuses_every_queue_key_as_an_id(settings: Settings) -> None:
    async with api(settings) as client, queues(settings) as q:
        # Make the queue's keys exist (wait, meta, id, events, completed, stalled-check, …).
        made = await client.post("/api/preview/job", json={**JOB, "jobId": "ids-1", "dryRun": True})
        assert made.is_success
        async with consumer(settings):

            async def done() -> bool:
                return await q.state("ids-1") == "completed"

            await eventually(done)
        await q.client.set(f"bull:{settings.queue_name}:ids-1:lock", "a-token")
        answers = {}
        for job_id in IDS:
            for route in ROUTES:
                resp = await client.get(f"/api/preview/job/{job_id}/{route}")
                answers[job_id, route] = (resp.status_code, "error" in resp.json())
        assert answers == {key: (404, True) for key in answers}
        ok = await client.get("/api/preview/job/ids-1/status")
        assert (ok.status_code, ok.json()["state"]) == (200, "completed")


async def test_every_client_method_that_takes_an_id_refuses_queue_keys(settings: Settings) -> None:
    async with AsyncPreviewClient.from_config(settings.client_config()) as client, queues(settings) as q:
        assert (await client.enqueue({**JOB, "jobId": "ids-2"})).created
        for job_id in IDS:
            assert await client.status(job_id) is None, job_id
            assert await q.get(job_id) is None, job_id
            assert await q.state(job_id) == "unknown", job_id
            with pytest.raises(KeyError):
                await client.wait(job_id, timeout=0.1)


async def test_a_404_echoes_at_most_a_short_prefix_of_the_id(settings: Settings) -> None:
    long_id = "a" * 60_000
    async with api(settings) as client:
        for route in ROUTES:
            resp = await client.get(f"/api/preview/job/{long_id}/{route}")
            assert resp.status_code == 404
            assert len(resp.content) < 300 and "aaaa" in resp.json()["error"], resp.content[:300]


async def test_a_trailing_slash_is_a_404_with_no_location_before_auth(settings: Settings) -> None:
    async with api(settings) as client:
        for path in ("/api/preview/queue/metrics/", "/api/preview/job/", "/api/preview/job/x/status/"):
            resp = await client.get(path, headers={"Host": "evil.example", "Authorization": ""})
            assert resp.status_code == 404, (path, resp.status_code)
            assert "location" not in resp.headers


@pytest.mark.parametrize("value", [b'"\\ud800"', b"NaN", b"1e400"], ids=repr)
async def test_a_manifest_written_before_the_json_gate_is_no_set_not_a_500(
    settings: Settings, value: bytes
) -> None:
    """Older workers stored raw jobs' metadata as it came; such a manifest is now no usable set."""
    folder = settings.data_dir / "old-set"
    folder.mkdir(parents=True)
    stored = b'{"jobId": "old-set", "renditions": [], "metadata": {"a": ' + value + b"}}"
    (folder / "manifest.json").write_bytes(stored)
    async with api(settings) as client:
        for route in ("artifact", "artifact/thumb"):
            resp = await client.get(f"/api/preview/job/old-set/{route}")
            assert resp.status_code == 404, (route, resp.text)

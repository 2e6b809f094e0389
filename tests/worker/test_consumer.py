"""The consumer against a real redis-server: rendering per input kind, idempotency, retries, DLQ, dry runs."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import pytest
import worker_media as media
from bullmq import UnrecoverableError, Worker
from worker_http import SourceServer
from worker_kit import consumer, decode_image, eventually, payload, queues, state_of, wait_state

from worker import constants as c
from worker.render.sandbox import RenderPool
from worker.settings import Settings
from worker.store import artifacts

PIL_FORMAT = {"webp": "WEBP", "jpeg": "JPEG", "png": "PNG"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check_artifacts(settings: Settings, job_id: str, expected: dict[str, tuple[int, int]]) -> None:
    manifest = artifacts.load_manifest(settings.data_dir, job_id)
    assert manifest is not None, f"no artifact set for {job_id}"
    got = {}
    for entry in manifest["renditions"]:
        data = (settings.data_dir / job_id / entry["path"]).read_bytes()
        image = decode_image(data)
        assert image.format == PIL_FORMAT[entry["format"]]
        assert image.size == (entry["width"], entry["height"]) and len(data) == entry["bytes"]
        got[entry["name"]] = image.size
    assert got == expected


def labels(cons: Any, **more: str) -> dict[str, str]:
    """The labels of ``cons``'s series: its track and release, and ``more``."""
    return {c.LABEL_TRACK: cons.metrics.track, c.LABEL_RELEASE: cons.metrics.release, **more}


def outcome_count(cons: Any, outcome: str, reason: str | None = None) -> float:
    """How often ``cons`` counted ``outcome``: with ``reason``, or over every reason."""
    reasons = c.REASONS if reason is None else (reason,)
    registry = cons.metrics.registry
    return sum(
        registry.get_sample_value(c.METRIC_JOB_OUTCOMES, labels(cons, outcome=outcome, reason=r)) or 0.0
        for r in reasons
    )


async def settled(cons: Any) -> None:
    """Wait until the consumer has counted every attempt it ended (``Consumer.unsettled``)."""

    async def probe() -> bool:
        return cons.unsettled == 0

    await eventually(probe, timeout=5.0, every=0.01)


async def test_happy_path_per_input_kind(
    settings: Settings, source_server: SourceServer, input_root: Path
) -> None:
    (input_root / "uploads" / "pic.png").write_bytes(media.png(640, 480))
    cases = {
        "inline-jpeg": ({"inline": b64(media.jpeg(800, 600))}, {"thumb": (320, 240), "card": (200, 100)}),
        "inline-gif": ({"inline": b64(media.gif(400, 200))}, {"thumb": (320, 160), "card": (200, 100)}),
        "path-png": ({"path": "uploads/pic.png"}, {"thumb": (320, 240), "card": (200, 100)}),
        "url-webp": (
            {"url": source_server.route("/kind/a.webp", body=media.webp(300, 600))},
            {"thumb": (160, 320), "card": (200, 100)},
        ),
        "url-pdf": (
            {"url": source_server.route("/kind/a.pdf", body=media.pdf(612, 792))},
            {"thumb": (247, 320), "card": (200, 100)},
        ),
    }
    async with queues(settings) as q, consumer(settings) as cons:
        for job_id, (source, _) in cases.items():
            await q.enqueue(payload(source, job_id, metadata={"case": job_id}))
        for job_id, (_, expected) in cases.items():
            await wait_state(q, job_id, "completed")
            check_artifacts(settings, job_id, expected)
            manifest = artifacts.load_manifest(settings.data_dir, job_id)
            assert manifest is not None and manifest["metadata"] == {"case": job_id}
        await settled(cons)
        assert outcome_count(cons, "completed") == len(cases)
        assert (await q.counts())["completed"] == len(cases)


async def test_same_job_id_twice_is_one_job_and_one_artifact_set(settings: Settings) -> None:
    body = payload({"inline": b64(media.jpeg(400, 300))}, "idem-1")
    async with queues(settings) as q:
        assert await q.enqueue(body) == ("idem-1", True)
        assert await q.enqueue(body) == ("idem-1", False)
        # Even bypassing our check, BullMQ keeps one job per id.
        await q.main.add(c.JOB_NAME, body, {"jobId": "idem-1"})
        assert (await q.counts())["waiting"] == 1
        async with consumer(settings) as cons:
            await wait_state(q, "idem-1", "completed")
            assert await q.enqueue(body) == ("idem-1", False)
            await asyncio.sleep(0.3)
            await settled(cons)
            assert outcome_count(cons, "completed") == 1
        assert sorted(p.name for p in settings.data_dir.iterdir()) == ["idem-1"]


async def test_transient_errors_retry_with_exponential_backoff(
    settings: Settings, source_server: SourceServer
) -> None:
    url = source_server.route("/retry/a.jpg", body=media.jpeg(400, 300), fail_first=2)
    async with queues(settings) as q, consumer(settings) as cons:
        started = time.monotonic()
        await q.enqueue(payload({"url": url}, "retry-1"))
        await wait_state(q, "retry-1", "completed")
        elapsed = time.monotonic() - started
        job = await q.get("retry-1")
        assert job is not None and job.attemptsMade == 3
        assert source_server.routes["/retry/a.jpg"].hits == 3
        assert elapsed >= 0.2 + 0.4  # backoff 200 ms, then 400 ms
        await settled(cons)
        assert (outcome_count(cons, "retried"), outcome_count(cons, "completed")) == (2, 1)
        assert (await q.counts())["dlq"] == 0


async def test_exhausted_retries_go_to_dlq(settings: Settings, source_server: SourceServer) -> None:
    url = source_server.route("/retry/down.jpg", body=b"", fail_first=1000)
    async with queues(settings) as q, consumer(settings) as cons:
        await q.enqueue(payload({"url": url}, "down-1"))
        await wait_state(q, "down-1", "failed")
        job = await q.get("down-1")
        assert job is not None and job.attemptsMade == 3
        (entry,) = await q.dlq_entries()
        assert entry.id == "down-1"
        assert (
            entry.data["reason"] == f"SourceUnavailable: {source_server.url('/retry/down.jpg')} answered 503"
        )
        assert entry.data["attemptsMade"] == 3
        assert entry.data["data"] == payload({"url": url}, "down-1")
        await settled(cons)
        assert (
            outcome_count(cons, "retried"),
            outcome_count(cons, "failed"),
            outcome_count(cons, "dlq"),
        ) == (2, 1, 1)


async def test_each_error_path_is_counted_with_its_reason(
    settings: Settings, source_server: SourceServer
) -> None:
    """The ``reason`` label says which class of error a job failed with, from the exception class."""
    down = source_server.route("/reason/down.jpg", body=b"", fail_first=1000)
    corrupt = {"inline": base64.b64encode(b"\xff\xd8\xff" + b"\x00junk" * 10).decode()}
    bomb = {"inline": base64.b64encode(media.huge_png_header()).decode()}
    jobs = {
        "reason-source": (payload({"path": "uploads/never.jpg"}, "reason-source"), c.REASON_SOURCE),
        "reason-render": (payload(corrupt, "reason-render"), c.REASON_RENDER),
        "reason-budget": (payload(bomb, "reason-budget"), c.REASON_BUDGET),
        "reason-down": (payload({"url": down}, "reason-down"), c.REASON_SOURCE),
    }
    async with queues(settings) as q, consumer(settings) as cons:
        for data, _ in jobs.values():
            await q.enqueue(data)
        await q.main.add(c.JOB_NAME, {"outputs": []}, {"jobId": "reason-invalid"})
        for job_id in [*jobs, "reason-invalid"]:
            await wait_state(q, job_id, "failed")
        await q.enqueue(payload({"inline": base64.b64encode(media.jpeg(40, 30)).decode()}, "reason-ok"))
        await wait_state(q, "reason-ok", "completed")

        async def counted() -> bool:  # the last attempt is counted once Redis recorded it
            return outcome_count(cons, "completed") == 1 and outcome_count(cons, "failed") == len(jobs) + 1

        await eventually(counted)
        by_reason = {r: outcome_count(cons, "failed", r) for r in c.REASONS}
        assert by_reason == {
            **dict.fromkeys(c.REASONS, 0.0),
            c.REASON_SOURCE: 2.0,  # a missing file, and an upstream that answers 503 on every attempt
            c.REASON_RENDER: 1.0,  # a corrupt JPEG
            c.REASON_BUDGET: 1.0,  # a 50000x50000 PNG over the pixel guard
            c.REASON_INVALID: 1.0,  # the producer's mistake
        }
        await settled(cons)
        assert outcome_count(cons, "retried", c.REASON_SOURCE) == 2  # the 503s before the last attempt
        assert outcome_count(cons, "invalid", c.REASON_INVALID) == 1
        assert outcome_count(cons, "dlq") == outcome_count(cons, "failed")
        assert outcome_count(cons, "completed", c.REASON_NONE) == 1


async def test_permanent_failure_goes_straight_to_dlq_then_redrive(
    settings: Settings, input_root: Path
) -> None:
    async with queues(settings) as q, consumer(settings):
        await q.enqueue(payload({"path": "uploads/later.jpg"}, "perm-1"))
        await wait_state(q, "perm-1", "failed")
        job = await q.get("perm-1")
        assert job is not None and job.attemptsMade == 1  # no retry
        assert job.failedReason == "source path 'uploads/later.jpg' does not exist"
        (entry,) = await q.dlq_entries()
        assert entry.data["reason"] == "source path 'uploads/later.jpg' does not exist"

        (input_root / "uploads" / "later.jpg").write_bytes(media.jpeg(400, 300))
        assert await q.redrive() == ["perm-1"]
        await wait_state(q, "perm-1", "completed")
        assert (await q.counts())["dlq"] == 0
        check_artifacts(settings, "perm-1", {"thumb": (320, 240), "card": (200, 100)})


async def test_redrive_command(settings: Settings, worker_env: dict[str, str], input_root: Path) -> None:
    async with queues(settings) as q:
        async with consumer(settings):
            await q.enqueue(payload({"path": "uploads/cmd.jpg"}, "cmd-1"))
            await wait_state(q, "cmd-1", "failed")
        (input_root / "uploads" / "cmd.jpg").write_bytes(media.jpeg(100, 100))
        import os
        import sys

        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "worker",
            "redrive",
            env={**os.environ, **worker_env},
            stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        assert out.decode().strip().splitlines()[-1] == '{"redriven": 1, "jobIds": ["cmd-1"]}'
        assert await state_of(q, "cmd-1") == "waiting"
        async with consumer(settings):
            await wait_state(q, "cmd-1", "completed")


async def test_dry_run_validates_and_counts_but_never_renders(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def no_render(*args: Any) -> Any:
        calls.append("render")
        raise AssertionError("renderer called for a dry run")

    monkeypatch.setattr(RenderPool, "render", no_render)
    async with queues(settings) as q, consumer(settings) as cons:
        await q.enqueue(payload({"path": "uploads/photo.jpg"}, "dry-1", dryRun=True))
        await wait_state(q, "dry-1", "completed")
        job = await q.get("dry-1")
        assert job is not None and job.returnvalue == {"outcome": "dryrun", "renditions": 0}
        assert calls == [] and not (settings.data_dir / "dry-1").exists()
        await settled(cons)
        assert outcome_count(cons, "dryrun") == 1
        taken = cons.metrics.registry.get_sample_value(c.METRIC_JOBS_TAKEN, labels(cons))
        assert taken == 1


async def test_bad_input_fails_clearly_and_the_worker_carries_on(
    settings: Settings, source_server: SourceServer, input_root: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside.jpg").write_bytes(media.jpeg(10, 10))
    (input_root / "uploads" / "sneaky.jpg").symlink_to(tmp_path / "outside.jpg")
    elsewhere = f"http://localhost:{source_server.port}/bad/ok.jpg"
    source_server.route("/bad/ok.jpg", body=media.jpeg(10, 10))
    tiny = settings.model_copy(update={"max_inline_bytes": 5000})
    out = [{"name": "t", "format": "png", "width": 10, "height": 10}]
    bad: dict[str, tuple[Any, str]] = {
        "truncated": (
            {"source": {"inline": b64(media.jpeg(400, 300)[:400])}, "outputs": out},
            "source image is truncated",
        ),
        "corrupt": (
            {"source": {"inline": b64(b"\xff\xd8\xff" + b"\x00junk" * 10)}, "outputs": out},
            "source image cannot be identified (corrupt or not an image)",
        ),
        "huge": (
            {"source": {"inline": b64(media.huge_png_header())}, "outputs": out},
            "source is 50000x50000 = 2500000000 pixels, over the 50000000-pixel guard",
        ),
        "empty-pdf": (
            {"source": {"inline": b64(media.empty_pdf())}, "outputs": out},
            "PDF cannot be opened: it has no pages or is damaged",
        ),
        "encrypted-pdf": (
            {"source": {"inline": b64(media.encrypted_pdf())}, "outputs": out},
            "PDF is encrypted (password required)",
        ),
        "traversal": (
            {"source": {"path": "uploads/sneaky.jpg"}, "outputs": out},
            "source path 'uploads/sneaky.jpg' escapes the input root",
        ),
        "host": (
            {"source": {"url": elsewhere}, "outputs": out},
            f"source host of {elsewhere} is not allowed (PREVIEW_SOURCE_HOSTS)",
        ),
        "redirect": (
            {
                "source": {
                    "url": source_server.route("/bad/hop", status=302, headers={"Location": elsewhere})
                },
                "outputs": out,
            },
            f"source host of {elsewhere} is not allowed (PREVIEW_SOURCE_HOSTS)",
        ),
        "types": (
            {"source": {"path": 7}, "outputs": [{"name": "t", "format": "png", "width": "10", "height": 10}]},
            "invalid job: $.outputs[0].width: '10' is not of type 'integer'; "
            "$.source.path: 7 is not of type 'string'",
        ),
        "oversized": (
            {"source": {"inline": b64(b"x" * 6000)}, "outputs": out},
            "invalid job: $.source.inline: decodes to 6000 bytes, over the 5000-byte cap",
        ),
        "not-an-object": ("just a string", "invalid job: $: 'just a string' is not of type 'object'"),
    }
    async with queues(tiny) as q, consumer(tiny) as cons:
        for job_id, (body, _) in bad.items():
            # Straight into Redis, as any producer could: the worker validates again.
            await q.main.add(c.JOB_NAME, body, {"jobId": job_id, "attempts": 3})
        await q.enqueue(payload({"path": "uploads/photo.jpg"}, "good-after"))
        await wait_state(q, "good-after", "completed")
        for job_id, (_, reason) in bad.items():
            await wait_state(q, job_id, "failed")
            job = await q.get(job_id)
            assert job is not None
            assert (job_id, job.failedReason, job.attemptsMade) == (job_id, reason, 1)
        dlq = {e.id: e.data["reason"] for e in await q.dlq_entries()}
        assert dlq == {job_id: reason for job_id, (_, reason) in bad.items()}
        await settled(cons)
        assert outcome_count(cons, "invalid") == 3
        assert outcome_count(cons, "dlq") == len(bad)


async def test_jobs_failed_by_bullmq_itself_are_swept_into_the_dlq(settings: Settings) -> None:
    async with queues(settings) as q:
        await q.main.add(c.JOB_NAME, payload({"path": "x.jpg"}), {"jobId": "swept-1"})

        async def refuse(job: Any, token: str) -> None:
            raise UnrecoverableError("failed outside our processor")

        plain = Worker(
            settings.queue_name, refuse, {"connection": settings.redis_url, "prefix": c.BULL_PREFIX}
        )
        await wait_state(q, "swept-1", "failed")
        await plain.close()
        assert await q.dlq_entries() == []
        async with consumer(settings) as cons:

            async def dead_lettered() -> list[Any]:
                return await q.dlq_entries()

            (entry,) = await eventually(dead_lettered)
            assert (entry.id, entry.data["reason"]) == ("swept-1", "failed outside our processor")
            assert await cons.sweep_failed() == 0  # already there


async def test_dlq_entry_is_written_before_the_job_is_marked_failed(settings: Settings) -> None:
    async with queues(settings) as q, consumer(settings) as cons:
        states: list[str | None] = []
        write = cons.queues.dead_letter
        broken = {"left": 1}

        async def spy(job: Any, reason: str, attempts_made: int) -> None:
            states.append(await state_of(q, str(job.id)))
            if broken["left"]:
                broken["left"] -= 1
                raise ConnectionError("redis went away")  # the DLQ write fails once
            await write(job, reason, attempts_made)

        cons.queues.dead_letter = spy  # type: ignore[method-assign]
        await q.enqueue(payload({"path": "uploads/missing.jpg"}, "order-1"))
        await wait_state(q, "order-1", "failed")
        # Attempt 1 could not write the DLQ entry, so the job was retried rather than failed unrecorded.
        assert states == ["active", "active"]
        job = await q.get("order-1")
        assert job is not None and job.attemptsMade == 2
        (entry,) = await q.dlq_entries()
        reason = "source path 'uploads/missing.jpg' does not exist"
        assert (entry.id, entry.data["reason"]) == ("order-1", reason)


async def test_turnaround_is_timed_from_enqueue_for_jobs_that_end_well(settings: Settings) -> None:
    """The latency SLI's histogram: a job counts its wait in the queue; a failed one is not timed."""
    async with queues(settings) as q:
        await q.enqueue(payload({"inline": b64(media.jpeg(200, 100))}, "waited-1"))
        await q.enqueue(payload({"path": "uploads/absent.jpg"}, "fails-1"))
        await asyncio.sleep(1.2)  # no consumer yet: both wait more than the first bucket
        async with consumer(settings) as cons:
            await wait_state(q, "waited-1", "completed")
            await wait_state(q, "fails-1", "failed")

            def bucket(le: str) -> float:
                labels = {c.LABEL_TRACK: "stable", c.LABEL_RELEASE: settings.release, "le": le}
                value = cons.metrics.registry.get_sample_value(f"{c.METRIC_JOB_TURNAROUND}_bucket", labels)
                return float(value or 0)

            assert (bucket("1.0"), bucket("5.0"), bucket("+Inf")) == (0, 1, 1)
            await settled(cons)
            assert outcome_count(cons, "failed") == 1

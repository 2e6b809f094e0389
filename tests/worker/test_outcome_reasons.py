"""Every outcome ``reason`` (``REASONS`` in worker/constants.py) is caused by a test.

Here a real ``python -m worker run`` process meets a source server on loopback that stalls past
the URL timeout (``timeout``), an artifact store that refuses writes (``store``: MinIO with
temporary credentials whose policy denies PutObject) and a render over its time limit
(``timeout``); the reason labels are read from the worker's real ``/metrics`` and the messages
from the real DLQ entries. The other reasons are caused by the tests :data:`CAUSED_BY` names, and
a test checks that the table covers ``REASONS`` and that each named test uses its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import httpx
import worker_media as media
from prometheus_client.parser import text_string_to_metric_families
from store_kit import MinioServer, minio  # noqa: F401  (minio is a fixture)
from worker_http import SourceServer
from worker_kit import b64, eventually, payload, queues, wait_state

from worker import constants as c
from worker.settings import Settings

TESTS = Path(__file__).resolve().parent

#: The test that causes each reason (``file::function``); that function must name the reason's
#: constant. ``internal`` is the label of a bug: no real input raises an unclassified error, so
#: its test replaces the renderer to make one (see that test's comment).
_ERROR_PATHS = "test_consumer.py::test_each_error_path_is_counted_with_its_reason"
_HERE = "test_outcome_reasons.py::test_a_stalled_source_is_a_timeout_and_a_refused_write_a_store_error"
CAUSED_BY: dict[str, str] = {
    c.REASON_NONE: _ERROR_PATHS,
    c.REASON_INVALID: _ERROR_PATHS,
    c.REASON_SOURCE: _ERROR_PATHS,
    c.REASON_RENDER: _ERROR_PATHS,
    c.REASON_BUDGET: _ERROR_PATHS,
    c.REASON_TIMEOUT: _HERE,
    c.REASON_STORE: _HERE,
    c.REASON_LOST: "test_consumer_housekeeping.py::"
    "test_one_bad_entry_is_counted_and_skipped_and_the_round_runs_on",
    c.REASON_INTERNAL: "render/test_render_numbers.py::test_a_non_io_error_while_rendering_is_permanent",
}


def outcomes(worker: Any) -> dict[tuple[str, str], float]:
    """``{(outcome, reason): count}`` from a real scrape of ``worker``'s ``/metrics``."""
    text = httpx.get(f"http://127.0.0.1:{worker.port}{c.METRICS_PATH}", timeout=5).text
    return {
        (s.labels[c.LABEL_OUTCOME], s.labels[c.LABEL_REASON]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == c.METRIC_JOB_OUTCOMES
    }


async def scraped(worker: Any, expected: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """The worker's outcome counts once ``expected`` are all counted (the last attempt of a job is
    counted when Redis recorded it)."""

    async def counted() -> dict[tuple[str, str], float] | None:
        found = outcomes(worker)
        return found if {k: found.get(k) for k in expected} == expected else None

    return await eventually(counted, timeout=30)


async def test_a_stalled_source_is_a_timeout_and_a_refused_write_a_store_error(
    spawn_worker: Any,
    settings: Settings,
    source_server: SourceServer,
    minio: MinioServer,  # noqa: F811
) -> None:
    bucket = minio.new_bucket()
    stalled = source_server.route("/reasons/stall.jpg", body=media.jpeg(64, 48), delay=3.0)
    worker = spawn_worker(**minio.read_only_env(bucket), **{c.ENV_URL_TIMEOUT_SECONDS: "1"})
    async with queues(settings) as q:
        await q.enqueue(payload({"url": stalled}, "stalled-source"))
        await q.enqueue(payload({"inline": b64(media.jpeg(64, 48))}, "refused-write"))
        await q.enqueue(payload({"inline": b64(media.jpeg(64, 48))}, "dry-run", dryRun=True))
        for job_id in ("stalled-source", "refused-write"):
            await wait_state(q, job_id, "failed", timeout=40)
        attempts = settings.job_attempts
        found = await scraped(
            worker,
            {
                **{(o, c.REASON_TIMEOUT): 1.0 for o in (c.FAILED_OUTCOME, "dlq")},
                **{(o, c.REASON_STORE): 1.0 for o in (c.FAILED_OUTCOME, "dlq")},
                ("retried", c.REASON_TIMEOUT): attempts - 1.0,  # both are transient: retried first
                ("retried", c.REASON_STORE): attempts - 1.0,
                ("dryrun", c.REASON_NONE): 1.0,  # a dry run writes nothing: the store never refuses it
            },
        )
        # Nothing else: no attempt of these ended unclassified.
        assert {k for k, v in found.items() if v} == {
            *(
                (o, r)
                for o in (c.FAILED_OUTCOME, "dlq", "retried")
                for r in (c.REASON_TIMEOUT, c.REASON_STORE)
            ),
            ("dryrun", c.REASON_NONE),
        }
        entries = {e.id: e.data for e in await q.dlq_entries()}
    assert set(entries) == {"stalled-source", "refused-write"}
    assert entries["stalled-source"]["reason"] == (
        f"SourceTimeout: fetching {stalled} took over 1s ({c.ENV_URL_TIMEOUT_SECONDS})"
    )
    assert entries["refused-write"]["reason"].startswith("StoreUnavailableError: artifact store: ")
    assert entries["refused-write"]["reason"].endswith("AccessDenied (HTTP 403)")
    assert all(e["attemptsMade"] == settings.job_attempts for e in entries.values())
    assert minio.keys(bucket) == []  # the refused write left nothing


async def test_a_render_over_its_time_limit_is_a_timeout(spawn_worker: Any, settings: Settings) -> None:
    # A millisecond: no render of a 2000x1500 JPEG (decode, two encodes, a pipe each way) fits.
    worker = spawn_worker(**{c.ENV_RENDER_TIMEOUT_SECONDS: "0.001"})
    async with queues(settings) as q:
        await q.enqueue(payload({"inline": b64(media.jpeg(2000, 1500))}, "slow-render"))
        await wait_state(q, "slow-render", "failed", timeout=30)
        found = await scraped(worker, {(o, c.REASON_TIMEOUT): 1.0 for o in (c.FAILED_OUTCOME, "dlq")})
        (entry,) = await q.dlq_entries()
    assert found.get(("retried", c.REASON_TIMEOUT), 0.0) == 0.0  # a render error is permanent
    assert entry.data["reason"] == f"rendering took over 0.001s ({c.ENV_RENDER_TIMEOUT_SECONDS})"
    assert entry.data["attemptsMade"] == 1


def test_every_reason_is_caused_by_a_named_test_that_uses_it() -> None:
    assert set(CAUSED_BY) == set(c.REASONS)
    constant = {getattr(c, n): n for n in dir(c) if n.startswith("REASON_") and n != "REASONS"}
    for reason, node in CAUSED_BY.items():
        file, _, name = node.partition("::")
        tree = ast.parse((TESTS / file).read_text())
        [func] = [
            f
            for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and f.name == name
        ]
        used = {n.attr for n in ast.walk(func) if isinstance(n, ast.Attribute)}
        assert constant[reason] in used, f"{node} never names c.{constant[reason]}"

"""Renders in killable processes: the time limit, the memory cap, shutdown, reuse (issue 16, items 7 and 12).

A 75 KB PDF rendered for 46 s in a thread, holding its job and every PDF job behind PDFium's
lock, and a SIGTERM's drain ended only when it did. These run the real ``worker.render.child``
processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import worker_media as media

from worker import constants as c
from worker.errors import (
    PermanentJobError,
    RenderCancelled,
    RenderError,
    RenderKilled,
    TransientJobError,
    reason_of,
)
from worker.render import OutputSpec
from worker.render.sandbox import RenderPool

REPO = Path(__file__).resolve().parents[3]
THUMB = [OutputSpec("thumb", "webp", 320, 320)]
BIG = [OutputSpec("page", "png", 1200, 1200)]
PIXELS = 50_000_000


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().split()[2] == "Z"  # killed, not yet reaped


async def test_renders_run_in_child_processes_that_are_reused() -> None:
    pool = RenderPool(2, 256 * 2**20, 30)
    try:
        kind, (r,) = await pool.render(media.jpeg(800, 600), THUMB, PIXELS)
        assert (kind, r.width, r.height) == ("image/jpeg", 320, 240)
        [pid] = pool.pids()
        assert pid != os.getpid()
        for _ in range(3):
            await pool.render(media.png(100, 80), THUMB, PIXELS)
        assert pool.pids() == [pid]  # one at a time: the same process
        results = await asyncio.gather(*(pool.render(media.pdf(612, 792), THUMB, PIXELS) for _ in range(4)))
        assert [kind for kind, _ in results] == ["application/pdf"] * 4
        assert len(pool.pids()) == 2  # never more than the pool's size
    finally:
        await pool.close()
    assert pool.pids() == [] and gone(pid)


async def test_a_render_over_the_time_limit_is_killed_and_fails_permanently() -> None:
    # A new process's first render includes its interpreter's start, which a busy machine can
    # stretch past 0.5 s: those renders get a long limit, the one under test the short one.
    pool = RenderPool(1, 256 * 2**20, 60)
    try:
        await pool.render(media.png(10, 10), THUMB, PIXELS)  # start the process
        [pid] = pool.pids()
        pool.timeout_seconds = 0.5
        with pytest.raises(PermanentJobError) as err:
            await pool.render(media.slow_pdf(), BIG, PIXELS)  # seconds of PDFium work
        assert str(err.value) == f"rendering took over 0.5s ({c.ENV_RENDER_TIMEOUT_SECONDS})"
        await asyncio.sleep(0.1)
        assert gone(pid)
        pool.timeout_seconds = 60
        _, (r,) = await pool.render(media.png(100, 80), THUMB, PIXELS)  # a fresh process takes over
        assert (r.width, r.height) == (100, 80) and pool.pids() != [pid]
    finally:
        await pool.close()


async def test_close_stops_a_render_in_flight_at_once() -> None:
    pool = RenderPool(1, 256 * 2**20, 60)
    render = asyncio.create_task(pool.render(media.slow_pdf(), BIG, PIXELS))
    while not pool.pids():
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)  # rendering now
    [pid] = pool.pids()
    await pool.close()
    with pytest.raises(RenderCancelled):
        await asyncio.wait_for(render, timeout=2)
    assert gone(pid)
    with pytest.raises(RenderCancelled):  # and nothing new starts
        await pool.render(media.png(10, 10), THUMB, PIXELS)


@pytest.mark.parametrize(
    ("sig", "kind", "how"),
    [
        # Only the kernel sends a render process SIGKILL (its OOM killer): another attempt may fit.
        (
            signal.SIGKILL,
            RenderKilled,
            "killed by SIGKILL, as the kernel's OOM killer does when the pod is out of memory",
        ),
        (
            signal.SIGSEGV,
            RenderError,
            "killed by SIGSEGV (a crash in a decoder)",
        ),  # a decoder crash: the same bytes crash again
    ],
)
async def test_a_render_process_that_dies_fails_the_job_with_how_it_ended(
    sig: signal.Signals, kind: type[Exception], how: str
) -> None:
    pool = RenderPool(1, 256 * 2**20, 60)
    try:
        render = asyncio.create_task(pool.render(media.slow_pdf(), BIG, PIXELS))
        while not pool.pids():
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        os.kill(pool.pids()[0], sig)
        with pytest.raises(kind, match=rf"^the render process failed: it was {re.escape(how)}") as info:
            await render
        assert isinstance(info.value, TransientJobError) == (sig == signal.SIGKILL)
        assert reason_of(info.value) == c.REASON_RENDER
        _, (r,) = await pool.render(media.png(50, 40), THUMB, PIXELS)
        assert (r.width, r.height) == (50, 40)
    finally:
        await pool.close()


async def test_a_pdf_whose_drawing_exhausts_the_budget_names_the_budget() -> None:
    """300,000 strokes: PDFium aborts (SIGABRT) when its allocation fails under a 32 MiB budget (it
    renders, in 16 s, under 128 MiB). The reason names the budget and the setting, not a crash.

    Three tries in a row reported "exited with status 255" before the pool's kill stopped reaping
    the aborted child ahead of asyncio (see ``_Child.kill``); each render here must see the abort."""
    for _ in range(2):
        pool = RenderPool(1, 32 * 2**20, 60)
        try:
            with pytest.raises(PermanentJobError) as err:
                await pool.render(media.slow_pdf(300_000), [OutputSpec("p", "png", 600, 600)], PIXELS)
        finally:
            await pool.close()
        reason = str(err.value)
        assert reason.startswith("the render process failed: it aborted (SIGABRT)"), reason
        assert reason.endswith(f"the render memory budget of 32 MiB ({c.ENV_RENDER_MEMORY_BYTES})")


async def test_job_errors_from_the_child_keep_their_reason() -> None:
    pool = RenderPool(1, 256 * 2**20, 30)
    try:
        with pytest.raises(PermanentJobError, match=r"^source image cannot be identified"):
            await pool.render(b"GIF89a not really", THUMB, PIXELS)
        with pytest.raises(PermanentJobError, match=r"over the 100-pixel guard$"):
            await pool.render(media.png(20, 20), THUMB, 100)
    finally:
        await pool.close()


CAPPED = """
import sys
sys.path[:0] = [sys.argv[1]]
from worker.render import OutputSpec, RenderLimits
from worker.render.child import cap_memory, handle
import worker_media
source = worker_media.png(8000, 6000)  # 48 Mpx: about 190 MiB decoded, over the 64 MiB cap
cap_memory(64 * 2**20)
# The estimate is told there is room, so only the process's cap stands in the way.
reply, _ = handle(source, [OutputSpec("t", "png", 320, 320)], RenderLimits(10**9, 2**40))
print(reply["kind"], reply.get("retire"), reply["error"])
"""


def test_the_memory_cap_stops_a_render_the_estimate_let_through() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CAPPED, str(REPO)], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "tests" / "worker")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("permanent True rendering needed more than the render memory budget of ")


async def test_warm_starts_every_process_ahead_and_never_more_than_the_size() -> None:
    pool = RenderPool(2, c.RENDER_MEMORY_BYTES_DEFAULT, 30)
    try:
        await asyncio.gather(pool.warm(), pool.warm())  # twice at once: still two processes
        warmed = pool.pids()
        assert len(warmed) == 2
        await asyncio.gather(*(pool.render(media.png(100, 80), THUMB, PIXELS) for _ in range(4)))
        assert pool.pids() == warmed  # the renders used the processes started ahead
    finally:
        await pool.close()
    assert pool.pids() == []


def _minor_faults(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[7])  # minflt, after the command name


async def test_a_render_process_reuses_the_memory_its_last_render_freed() -> None:
    """glibc's default trimmed the heap after each render and the next one faulted its bitmaps'
    pages in afresh (about 3,000 page faults for this page, 7 % of a PDF's CPU): a render process
    keeps what it frees (``worker.render.child.keep_freed_memory``)."""
    pool = RenderPool(1, c.RENDER_MEMORY_BYTES_DEFAULT, 30)
    outputs = [OutputSpec("page", "webp", 1280, 1280), OutputSpec("half", "webp", 640, 640)]
    page = media.pdf(612, 792)
    try:
        for _ in range(2):
            await pool.render(page, outputs, PIXELS)
        [pid] = pool.pids()
        before = _minor_faults(pid)
        await pool.render(page, outputs, PIXELS)
        assert _minor_faults(pid) - before < 300
    finally:
        await pool.close()


def _child(deadline: float, parent: int | None = None) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "worker.render.child",
        str(256 * 2**20),
        str(deadline),
        str(parent or os.getpid()),
    ]
    return subprocess.Popen(
        argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _request(data: bytes, outputs: list[OutputSpec]) -> bytes:
    header = {"outputs": [o.__dict__ for o in outputs], "maxPixels": PIXELS, "size": len(data)}
    return json.dumps(header).encode() + b"\n" + data


def test_a_render_process_ends_itself_at_its_own_deadline() -> None:
    """Even with nobody to kill it, a render cannot run unbounded: SIGALRM's default action ends it
    inside PDFium's C code."""
    with _child(deadline=0.5) as child:
        assert child.stdin is not None
        child.stdin.write(_request(media.slow_pdf(), BIG))
        child.stdin.flush()
        started = time.monotonic()
        assert child.wait(timeout=30) == -signal.SIGALRM
        assert time.monotonic() - started < 3


def test_the_deadline_is_per_render_and_disarmed_between_renders() -> None:
    with _child(deadline=1.0) as child:
        assert child.stdin is not None and child.stdout is not None
        for _ in range(3):
            child.stdin.write(_request(media.png(100, 80), THUMB))
            child.stdin.flush()
            reply = json.loads(child.stdout.readline())
            assert reply["ok"], reply
            child.stdout.read(reply["renditions"][0]["size"])
            time.sleep(0.6)  # idle past the deadline in total: the timer only runs during a render
        child.stdin.close()
        assert child.wait(timeout=10) == 0


def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    with _child(deadline=10, parent=1) as child:  # "started by" pid 1: not its parent, as after a race
        assert child.wait(timeout=10) == 1


PARENT = """
import asyncio, os, sys
sys.path[:0] = [{repo!r}, {tests!r}]
import worker_media as media
from worker.render import OutputSpec
from worker.render.sandbox import RenderPool

async def main():
    pool = RenderPool(1, 256 * 2**20, 600)
    page = [OutputSpec("page", "png", 1200, 1200)]
    task = asyncio.create_task(pool.render(media.slow_pdf(200_000), page, 50_000_000))
    while not pool.pids():
        await asyncio.sleep(0.02)
    print(pool.pids()[0], flush=True)
    await task

asyncio.run(main())
"""


def test_render_processes_die_with_a_sigkilled_worker() -> None:
    """A SIGKILLed worker (not PID 1 of its pod, so nothing reaps its group) leaves no render running."""
    script = PARENT.format(repo=str(REPO), tests=str(REPO / "tests" / "worker"))
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as parent:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        time.sleep(0.5)  # rendering now
        assert not gone(pid)
        parent.kill()
        parent.wait(timeout=10)
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid), f"render process {pid} outlived its SIGKILLed worker"

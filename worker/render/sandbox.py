"""Renders run in child processes that can be killed: the time limit, the memory cap and drain.

A thread cannot be stopped: a PDF that rendered for 46 s held a job (and, behind PDFium's lock,
every other PDF job) for 46 s, and a SIGTERM's drain ended only when that render did. Here
each render goes to one of ``PREVIEW_RENDER_PROCESSES`` long-lived ``worker.render.child``
processes, started on first use. Past ``PREVIEW_RENDER_TIMEOUT_SECONDS`` the process is
killed and the job fails permanently with the limit in its reason; at the end of a drain
:meth:`RenderPool.close` kills every process, and the renders in flight raise
:class:`RenderCancelled`, so the consumer hands their jobs back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from worker import constants as c
from worker import logs
from worker.errors import RenderCancelled, RenderError, RenderTimeout, from_reason
from worker.render.registry import OutputSpec, Rendition

log = logs.get("render")
#: Bounds on what the parent reads from a child (it has parsed a hostile file): the header line
#: and the bytes of all renditions together.
MAX_REPLY_LINE = 256 * 2**10
MAX_REPLY_BYTES = 512 * 2**20
#: How much longer than the render timeout a child lets a render run before it ends itself
#: (``worker.render.child``'s own deadline, for when this process can no longer kill it).
CHILD_DEADLINE_GRACE_SECONDS = 5.0


class _Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.killed = False  # a killed process (a timeout, a retire) is never handed out again

    async def exchange(self, data: bytes, outputs: Sequence[OutputSpec], max_pixels: int) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        header = {"outputs": [asdict(o) for o in outputs], "maxPixels": max_pixels, "size": len(data)}
        self.proc.stdin.write(json.dumps(header).encode() + b"\n")
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readuntil(b"\n")
        reply: dict[str, Any] = json.loads(line)
        if reply.get("ok"):
            sizes = [int(r["size"]) for r in reply["renditions"]]
            if any(s < 0 for s in sizes) or sum(sizes) > MAX_REPLY_BYTES:
                raise ValueError(f"render process announced {sum(sizes)} bytes of renditions")
            reply["renditions"] = [
                Rendition(r["name"], r["format"], int(r["width"]), int(r["height"]),
                          await self.proc.stdout.readexactly(size))
                for r, size in zip(reply["renditions"], sizes, strict=True)
            ]  # fmt: skip
        return reply

    @property
    def reusable(self) -> bool:
        return not self.killed and self.proc.returncode is None

    def kill(self) -> None:
        """SIGKILL the process, if asyncio has not seen it end.

        Not ``self.proc.kill()``: that polls first (``waitpid(WNOHANG)``), which reaps a child that
        has just ended (an abort, a crash) before asyncio's child watcher does; the watcher then
        reports status 255 and how the render ended is lost. Only the watcher reaps the pid, and
        ``returncode`` is set one loop turn after it does, so a reuse of the pid in between would need
        the kernel to cycle through every pid in that moment."""
        self.killed = True
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)


class RenderPool:
    """At most ``size`` renders at once, each in its own killable process."""

    def __init__(self, size: int, memory_bytes: int, timeout_seconds: float) -> None:
        self.size = size
        self.memory_bytes = memory_bytes
        self.timeout_seconds = timeout_seconds
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._starting = 0  # processes warm() is starting
        self.closing = False

    async def render(
        self, data: bytes, outputs: Sequence[OutputSpec], max_pixels: int
    ) -> tuple[str, list[Rendition]]:
        """Render in a child process; raises the job errors the child reports, or why it ended."""
        async with self._slot() as child:
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    reply = await child.exchange(data, outputs, max_pixels)
            except TimeoutError:
                child.kill()
                raise RenderTimeout(
                    f"rendering took over {self.timeout_seconds:g}s ({c.ENV_RENDER_TIMEOUT_SECONDS})"
                ) from None
            except (OSError, EOFError, ValueError, KeyError, TypeError, asyncio.LimitOverrunError) as err:
                child.kill()
                if self.closing:
                    raise RenderCancelled("render stopped: the worker is shutting down") from None
                status = await child.proc.wait()
                raise RenderError(
                    f"the render process failed: {_ended(status, err, self.memory_bytes)}"
                ) from None
            if reply.get("retire"):
                child.kill()  # before the slot hands it back
        if reply["ok"]:
            return str(reply["mediaType"]), reply["renditions"]
        error = str(reply.get("error", "render failed"))[:500]
        raise from_reason(reply.get("reason"), error, transient=reply.get("kind") == "transient")

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[_Child]:
        if self.closing:
            raise RenderCancelled("render not started: the worker is shutting down")
        async with self._slots:
            child = self._take() or await self._spawn()
            self._busy.add(child)
            try:
                yield child
            finally:
                self._busy.discard(child)
                if child.reusable and not self.closing:
                    self._idle.append(child)
                else:
                    child.kill()

    def _take(self) -> _Child | None:
        while self._idle:
            child = self._idle.pop()
            if child.reusable:
                return child
        return None

    async def _spawn(self) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.render.child", str(self.memory_bytes),
            str(self.timeout_seconds + CHILD_DEADLINE_GRACE_SECONDS), str(os.getpid()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=MAX_REPLY_LINE,
            env={**os.environ, "PYTHONPATH": _import_path()},
        )  # fmt: skip
        log.debug("render process started", extra={"pid": proc.pid})
        return _Child(proc)

    async def warm(self) -> None:
        """Start every render process now, so the first renders do not wait for an interpreter.

        Each spawn holds a slot, so a render arriving meanwhile never starts an extra process.
        """
        while not self.closing and self._alive() < self.size:
            async with self._slots:
                if self.closing or self._alive() >= self.size:
                    return
                self._starting += 1
                try:
                    child = await self._spawn()
                finally:
                    self._starting -= 1
                if self.closing:  # closed while it started: close() did not see it
                    child.kill()
                    await child.proc.wait()
                    return
                self._idle.append(child)

    def _alive(self) -> int:
        return len(self._idle) + len(self._busy) + self._starting

    def pids(self) -> list[int]:
        """The render processes alive now, idle or busy."""
        return sorted(ch.proc.pid for ch in (*self._idle, *self._busy) if ch.reusable)

    async def close(self) -> int:
        """Kill every render process (renders in flight raise :class:`RenderCancelled`) and reap them;
        returns how many renders were in flight."""
        self.closing = True
        in_flight = len(self._busy)
        children = [*self._idle, *self._busy]
        self._idle.clear()
        for child in children:
            child.kill()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                await child.proc.wait()
        return in_flight


def _import_path() -> str:
    """PYTHONPATH with the folder holding this ``worker`` package first: the child imports the same code."""
    here = str(Path(__file__).resolve().parents[2])
    rest = os.environ.get("PYTHONPATH", "")
    return f"{here}{os.pathsep}{rest}" if rest else here


def _ended(status: int, err: BaseException, memory_bytes: int) -> str:
    if status == -signal.SIGABRT:
        # PDFium and the decoders' C++ abort when an allocation fails; under the render process's
        # RLIMIT_DATA that is the budget. The failed request is never mapped, so nothing left to
        # read after the fact can tell it from an internal assertion: the reason says "most likely".
        return (
            "it aborted (SIGABRT), as PDFium and the image decoders do when an allocation fails: most "
            f"likely the render needed more than the render memory budget of {memory_bytes // 2**20} MiB "
            f"({c.ENV_RENDER_MEMORY_BYTES})"
        )
    if status == -signal.SIGALRM:
        return f"it ran past its own render deadline ({c.ENV_RENDER_TIMEOUT_SECONDS} plus a grace period)"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"it was killed by {name} (a crash in a decoder, or the pod's memory limit)"
    if status:
        return f"it exited with status {status}"
    return f"{type(err).__name__}: {err}"

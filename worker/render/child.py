"""A render process: ``python -m worker.render.child BUDGET DEADLINE PARENT``, one render at a time.

Requests come on stdin, replies go to stdout.

Started and killed by :mod:`worker.render.sandbox`. Its data segment is capped at its start-up
size plus ``BUDGET`` bytes (``RLIMIT_DATA`` covers malloc and anonymous mmap), so a source that
decodes larger than the estimate in :mod:`worker.render.limits` ends in ``MemoryError`` here,
not in the pod's OOM kill.

Its C library's allocator keeps what a render frees for the next one (:func:`keep_freed_memory`).

It never outlives its worker, nor a render its deadline, even when nobody is left to kill it:

- the kernel sends it ``SIGKILL`` when the worker that started it dies (``PR_SET_PDEATHSIG``),
  so a SIGKILLed worker (one that is not PID 1 of its pod) leaves no render running;
- each render arms a real-time timer of ``DEADLINE`` seconds whose ``SIGALRM`` keeps its
  default action (terminate), which ends the process even inside PDFium's or libjpeg's C
  code, where a Python handler would never run. The parent's own limit is shorter, so the
  parent normally kills first and reports the timeout; this one is the backstop.

The wire format is length-framed JSON and raw bytes, never pickle: the parent must not trust
a process that has just parsed a hostile file.

- request: one JSON line ``{"outputs": [...], "maxPixels": n, "size": n}``, then ``size`` bytes;
- reply: one JSON line ``{"ok": true, "mediaType": t, "renditions": [{name, format, width,
  height, size}]}`` then the renditions' bytes in order, or ``{"ok": false, "kind":
  "permanent"|"transient", "error": text}``. ``"retire": true`` asks the parent not to reuse
  the process (after a ``MemoryError`` its heap is suspect).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from typing import Any, BinaryIO

from worker import constants as c
from worker import render
from worker.errors import PermanentJobError, reason_of
from worker.process.signals import die_with_parent
from worker.render.limits import RenderLimits
from worker.render.registry import OutputSpec, Rendition

#: Room over the budget for the encoders' buffers and the replies.
SLACK_BYTES = 48 * 2**20
MAX_LINE = 64 * 2**10
#: glibc ``mallopt`` parameters and what :func:`keep_freed_memory` sets them to: blocks under
#: 32 MiB (glibc's own ceiling for its moving threshold; Pillow's blocks are 16 MiB) come from the
#: heap, and up to 32 MiB of free heap stays mapped between renders, inside :data:`SLACK_BYTES`.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 32 * 2**20


def data_segment_bytes() -> int:
    """This process's data segment now (``VmData``), in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmData in /proc/self/status")


def cap_memory(budget: int) -> int:
    """Cap the data segment at its current size plus ``budget`` and slack; returns the cap."""
    cap = data_segment_bytes() + budget + SLACK_BYTES
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    return cap


def keep_freed_memory() -> bool:
    """Let malloc reuse what one render frees in the next instead of giving it back to the kernel.

    By default glibc maps each large block (from 128 KiB, a threshold it raises as blocks are
    freed) on its own and trims the heap once twice that threshold is free at its top, so every
    render faulted its bitmaps' pages in afresh: about 3,800 page faults and 7 % of a text or a
    scanned PDF's CPU (docs/throughput.md, issue 34). With both thresholds fixed, a render
    reuses the last one's heap: the peak is the same, and an idle process keeps at most
    :data:`TRIM_THRESHOLD_BYTES` of free heap, less than the slack its memory cap leaves over
    the budget. Returns whether the C library took both settings (glibc does; elsewhere this
    changes nothing).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def handle(
    data: bytes, outputs: list[OutputSpec], limits: RenderLimits
) -> tuple[dict[str, Any], list[Rendition]]:
    """Render and classify: the reply header, and the renditions whose bytes follow it.

    Any failure that is not I/O is permanent: the same bytes fail the same way on every attempt,
    so a retry would only delay the dead letter. ``OSError`` (a temporary file, the disk) is
    worth another attempt.
    """
    try:
        media_type, renditions = render.render(data, outputs, limits)
    except PermanentJobError as err:
        return {"ok": False, "kind": "permanent", "reason": reason_of(err), "error": str(err)}, []
    except MemoryError:
        return {
            "ok": False, "kind": "permanent", "reason": c.REASON_BUDGET, "retire": True,
            "error": f"rendering needed more than the render memory budget of "
                     f"{limits.memory_bytes // 2**20} MiB ({c.ENV_RENDER_MEMORY_BYTES})",
        }, []  # fmt: skip
    except OSError as err:
        return {"ok": False, "kind": "transient", "error": f"{type(err).__name__}: {err}"[:500]}, []
    except Exception as err:
        error = f"rendering failed: {type(err).__name__}: {err}"[:500]
        return {"ok": False, "kind": "permanent", "reason": c.REASON_INTERNAL, "error": error}, []
    described = [
        {"name": r.name, "format": r.format, "width": r.width, "height": r.height, "size": len(r.data)}
        for r in renditions
    ]
    return {"ok": True, "mediaType": media_type, "renditions": described}, renditions


def serve(budget: int, requests: BinaryIO, replies: BinaryIO, deadline: float = 0) -> int:
    """Answer requests until ``requests`` ends; returns the exit status.

    With ``deadline`` > 0, a render still running after that many seconds ends the process
    (``SIGALRM``, default action); the timer is disarmed between renders.
    """
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    while True:
        line = requests.readline(MAX_LINE)
        if not line:
            return 0
        req = json.loads(line)
        data = requests.read(int(req["size"]))
        outputs = [OutputSpec(**o) for o in req["outputs"]]
        signal.setitimer(signal.ITIMER_REAL, deadline)
        reply, renditions = handle(data, outputs, RenderLimits(int(req["maxPixels"]), budget))
        signal.setitimer(signal.ITIMER_REAL, 0)
        replies.write(json.dumps(reply).encode() + b"\n")
        for r in renditions:
            replies.write(r.data)
        replies.flush()
        if reply.get("retire"):
            return 0


def main(argv: list[str]) -> int:
    """Tie this process to its parent, cap memory, keep freed memory for the next render, move
    stdout aside for the protocol (stray prints go to stderr) and serve. ``argv``: the memory
    budget in bytes, the render deadline in seconds and the parent's pid."""
    budget, deadline, parent = int(argv[0]), float(argv[1]), int(argv[2])
    die_with_parent(parent)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    cap_memory(budget)
    keep_freed_memory()
    return serve(budget, sys.stdin.buffer, replies, deadline)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

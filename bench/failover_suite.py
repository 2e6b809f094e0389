"""Redis failover (issue 14, part 3): from the master's death to the first job completed on the new one.

Each round starts a fresh replicated Redis on loopback (one master, two replicas, three
sentinels; ``bench.redis_kit.SentinelGroup``), pre-fills a queue with ``jobs`` valid dryRun jobs
and starts one worker on the ``redis+sentinel://`` URL: ``python -m worker run`` (the path users
run), or the Node.js BullMQ no-op worker of ``bench/node/failover.mjs`` (ioredis' own Sentinel
support). Once a tenth of the jobs are done (at most 10,000 jobs, so retention trims none yet)
the master is SIGKILLed. The suite then watches the promoted master itself until its completed
set grows past what it had replicated: the time from the kill to that is the outage the queue
sees (read from Redis, since a retried completion keeps the worker's earlier ``finishedOn``).
The sentinels' own detection (``down-after-milliseconds`` 1000) is in both numbers alike; the
promotion time is reported too, so the worker's own reconnect time is the difference.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.preview_suite import _wait_ready
from bench.redis_kit import SentinelGroup, fill_jobs
from bench.run_suite import tiny_png
from bench.worker_proc import spawn, worker_env
from worker import constants as c

REPO = Path(__file__).resolve().parent.parent
NODE = REPO / "bench" / "node" / "failover.mjs"
PASSWORD = "bench-failover"
IMPLS = ("worker", "node")


def _start(impl: str, group: SentinelGroup, queue: str, data_dir: str) -> subprocess.Popen[str]:
    if impl == "node":
        hosts = ",".join(f"127.0.0.1:{p}" for p in group.sentinel_ports)
        proc = subprocess.Popen(
            ["node", str(NODE), hosts, group.MASTER, PASSWORD, queue, "4"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:
            if "ready" in line:
                return proc
        raise RuntimeError(f"node failover worker exited before ready ({proc.wait()})")
    env = worker_env(group.url, queue, data_dir, concurrency=4, run_retry_delay_ms=100)
    proc = spawn(env, output=True)
    _wait_ready(proc)
    return proc


def one_round(impl: str, jobs: int) -> dict[str, float]:
    """One failover under ``impl``: seconds to promotion and to the first job completed after it."""
    queue = f"fo-{uuid.uuid4().hex[:8]}"
    source = {"inline": tiny_png()}
    outputs = [{"name": "thumb", "format": "webp", "width": 64, "height": 64}]
    payloads = [
        ({"jobId": f"f{i}", "dryRun": True, "source": source, "outputs": outputs}, f"f{i}")
        for i in range(jobs)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp, SentinelGroup(tmp, PASSWORD) as group:
        fill_jobs(group.master_url(), queue, payloads)
        old = group.master_port()
        with group.client(old) as master:
            master.execute_command("WAIT", 2, 5000)
            worker = _start(impl, group, queue, tmp)
            try:
                completed = f"{c.BULL_PREFIX}:{queue}:completed"
                while master.zcard(completed) < jobs // 10:
                    time.sleep(0.005)
                group.kill(old)  # returns once the process is gone
                killed = time.monotonic()
                while (port := _master_or_none(group)) in (old, None):
                    time.sleep(0.02)
                promoted = time.monotonic()
                with group.client(port) as new:
                    replicated = new.zcard(completed)  # what the promoted replica had at the kill
                    deadline = time.monotonic() + 60
                    while new.zcard(completed) <= replicated:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{impl}: no job completed on the new master within 60 s")
                        time.sleep(0.002)
                    first = time.monotonic()
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(60)
    return {"promotion_s": promoted - killed, "first_job_s": first - killed}


def _master_or_none(group: SentinelGroup) -> int | None:
    try:
        return group.master_port()
    except Exception:  # a sentinel mid-failover may not answer
        return None


def compare(jobs: int, rounds: int) -> dict[str, Any]:
    """Rounds interleaved per implementation; medians and the worker/node ratio of the outage."""
    samples: dict[str, list[dict[str, float]]] = {impl: [] for impl in IMPLS}
    for _ in range(rounds):
        for impl in IMPLS:
            samples[impl].append(one_round(impl, jobs))
    median = {
        impl: {k: statistics.median(s[k] for s in runs) for k in ("promotion_s", "first_job_s")}
        for impl, runs in samples.items()
    }
    ratio = median["worker"]["first_job_s"] / median["node"]["first_job_s"]
    return {"jobs": jobs, "rounds": rounds, "median": median, "samples": samples, "ratio_worker_node": ratio}

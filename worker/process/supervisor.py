"""One worker process per core in a pod: ``python -m worker run`` with ``PREVIEW_WORKER_PROCESSES`` > 1.

Rendering is CPU-bound and a Python process uses one core, so a pod with N cores runs
N consumer processes. The supervisor (the pod's PID 1 child) starts them, restarts any
that dies, and serves the pod's single ``/healthz``, ``/readyz`` and ``/metrics`` on
``PREVIEW_METRICS_PORT``. The children run the consumer only (no HTTP port) with
Prometheus multiprocess mode on a private directory, and the supervisor's ``/metrics``
aggregates their files, so the pod still reports one set of series: counters and
histograms summed, jobs in flight summed over live processes, queue depth the max.

The first SIGTERM/SIGINT is forwarded to every child; each stops fetching and drains its
jobs within ``PREVIEW_DRAIN_SECONDS`` (the run sequence of :mod:`worker.process.lifecycle`),
and the supervisor exits 0 once all have exited. A second one kills the children and exits
at once (:mod:`worker.process.signals`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from worker import constants as c
from worker import logs
from worker.metrics import Metrics
from worker.process.health import HealthServer
from worker.process.signals import StopSignals
from worker.queue import queues
from worker.settings import Settings

log = logs.get("supervisor")
RESTART_DELAY_SECONDS = 1.0


class Supervisor:
    """Starts ``settings.worker_processes`` consumer children and keeps them running until stopped."""

    def __init__(self, settings: Settings, metrics_dir: str) -> None:
        self.settings = settings
        self.metrics_dir = metrics_dir
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start one consumer child (``python -m worker.process.supervisor``), sharing stdout for logs."""
        env = {**os.environ, c.ENV_PROMETHEUS_MULTIPROC_DIR: self.metrics_dir, c.ENV_WORKER_PROCESSES: "1"}
        # Its own process group: a terminal's Ctrl-C reaches the supervisor only, which forwards one
        # SIGTERM (the same signal twice would force the child's exit instead of draining it).
        proc = subprocess.Popen([sys.executable, "-m", "worker.process.supervisor"], env=env, process_group=0)
        self.children[proc.pid] = proc
        log.info("worker process started", extra={"pid": proc.pid})
        return proc

    def reap(self) -> list[int]:
        """Collect exited children (marking their gauges dead); returns their pids."""
        gone = [pid for pid, proc in self.children.items() if proc.poll() is not None]
        for pid in gone:
            proc = self.children.pop(pid)
            mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            if not self.stopping:
                log.warning(
                    "worker process exited, restarting", extra={"pid": pid, "status": proc.returncode}
                )
        return gone

    def kill(self) -> None:
        """SIGKILL every child still running (a second stop signal, or a drain past its bound)."""
        for proc in self.children.values():
            if proc.poll() is None:
                proc.kill()

    def terminate(self) -> None:
        """Forward SIGTERM to every child (each drains its own jobs)."""
        self.stopping = True
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)


def pod_metrics(settings: Settings, metrics_dir: str) -> Metrics:
    """A :class:`Metrics` whose registry reads every child's multiprocess files."""
    metrics = Metrics(settings.track, queue=settings.queue_name, release=settings.release)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
    metrics.registry = registry
    return metrics


def children_fetching(metrics: Metrics) -> bool:
    """True when the live children reported, and the lowest of their fetching gauges is 1."""
    for family in metrics.registry.collect():
        if family.name == c.METRIC_FETCHING:
            values = [s.value for s in family.samples if s.labels.get(c.LABEL_TRACK) == metrics.track]
            return bool(values) and min(values) == 1
    return False


async def supervise(settings: Settings) -> int:
    """Run the children and the pod's health/metrics server until a stop signal; returns 0."""
    metrics_dir = tempfile.mkdtemp(prefix="preview-metrics-")
    sup = Supervisor(settings, metrics_dir)
    ready_client = queues.redis_client(settings.redis_url)

    metrics = pod_metrics(settings, metrics_dir)

    async def ready() -> bool:
        if len(sup.children) != settings.worker_processes or not children_fetching(metrics):
            return False
        try:
            return bool(await ready_client.ping())
        except queues.REDIS_DOWN:
            return False

    health = HealthServer(metrics, ready, settings.metrics_host, settings.metrics_port)
    port = await health.start()
    stop = StopSignals(on_force=sup.kill).install()
    try:
        for _ in range(settings.worker_processes):
            sup.spawn()
        log.info("supervisor ready", extra={"processes": settings.worker_processes, "metricsPort": port})
        while not await stop.wait(0.2):
            if sup.reap() and not await stop.wait(RESTART_DELAY_SECONDS):
                while len(sup.children) < settings.worker_processes:
                    sup.spawn()
        log.info("draining worker processes", extra={"processes": len(sup.children)})
        started = time.monotonic()
        sup.terminate()
        # Children drain for up to drain_seconds; allow them a margin to exit, then kill.
        deadline = started + settings.drain_seconds + 10
        while sup.children and time.monotonic() < deadline:
            sup.reap()
            await asyncio.sleep(0.05)
        sup.kill()
        for proc in sup.children.values():
            proc.wait()
        log.info("supervisor stopped", extra={"drainSeconds": round(time.monotonic() - started, 3)})
        return 0
    finally:
        await health.close()
        await ready_client.aclose()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def child_main() -> int:
    """Entry point of a supervised child (``python -m worker.process.supervisor``)."""
    import uvloop

    from worker.process.lifecycle import run_consumer
    from worker.settings import load_or_exit

    if not os.environ.get(c.ENV_PROMETHEUS_MULTIPROC_DIR):
        print("python -m worker.process.supervisor is started by `python -m worker run`", file=sys.stderr)
        return 2
    settings = load_or_exit(warn_unknown=False)  # the supervisor has named unknown variables
    logs.setup(settings.log_level)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_consumer(settings, serve_health=False))


if __name__ == "__main__":
    sys.exit(child_main())

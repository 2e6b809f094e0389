"""A real Prometheus server on loopback, scraping a test exporter whose traffic the tests set.

The exporter serves the worker's series (names and labels from ``worker.constants``, ``track`` and
``release`` on each as the worker sets them) with values that grow at the rates of the current
:class:`Profile`, computed from the clock at scrape time, so a test controls what the rollout
analysis will measure without running workers.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import httpx
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tests.servers import free_port
from worker.constants import (
    LABEL_OUTCOME,
    LABEL_RELEASE,
    LABEL_STATE,
    LABEL_TRACK,
    METRIC_JOB_OUTCOMES,
    METRIC_QUEUE_DEPTH,
    OUTCOMES,
    QUEUE_STATES,
    TRACKS,
)

SCRAPE = "500ms"
#: Each track runs its own image, so its series carry their own ``release``.
RELEASES = {track: f"sha256-{track[:1] * 12}" for track in TRACKS}
DEPTH_LABELS = [LABEL_TRACK, LABEL_RELEASE, LABEL_STATE]


@dataclass(frozen=True)
class Profile:
    """Per-second rates: ``(track, outcome) -> jobs/s``, and DLQ growth in jobs/s."""

    rates: dict[tuple[str, str], float] = field(default_factory=dict)
    dlq_per_second: float = 0.0


def steady(
    canary_ok: float, canary_failed: float, stable_ok: float = 40.0, stable_failed: float = 0.2
) -> Profile:
    """Both tracks processing jobs at the given rates, no DLQ growth."""
    return Profile(
        {
            ("canary", "completed"): canary_ok,
            ("canary", "failed"): canary_failed,
            ("stable", "completed"): stable_ok,
            ("stable", "failed"): stable_failed,
        }
    )


class Traffic(Collector):
    """Counters that integrate the current profile's rates over wall time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since = time.monotonic()
        self._profile = Profile()
        self._base: dict[tuple[str, str], float] = {}
        self._dlq_base = 3.0

    def set(self, profile: Profile) -> None:
        """Switch rates from now on; counters keep their totals (they never go down)."""
        with self._lock:
            self._base, self._dlq_base = self._totals()
            self._since, self._profile = time.monotonic(), profile

    def _totals(self) -> tuple[dict[tuple[str, str], float], float]:
        elapsed = time.monotonic() - self._since
        keys = {(t, o) for t in TRACKS for o in OUTCOMES}
        totals = {k: self._base.get(k, 0.0) + self._profile.rates.get(k, 0.0) * elapsed for k in keys}
        return totals, self._dlq_base + self._profile.dlq_per_second * elapsed

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            totals, dlq = self._totals()
        outcomes = CounterMetricFamily(
            METRIC_JOB_OUTCOMES.removesuffix("_total"),
            "Job outcomes by kind.",
            labels=[LABEL_TRACK, LABEL_RELEASE, LABEL_OUTCOME],
        )
        for (track, outcome), value in sorted(totals.items()):
            outcomes.add_metric([track, RELEASES[track], outcome], value)
        depth = GaugeMetricFamily(
            METRIC_QUEUE_DEPTH,
            "Jobs in the queue by state.",
            labels=[LABEL_TRACK, LABEL_RELEASE, LABEL_STATE],
        )
        for track in TRACKS:
            for state in QUEUE_STATES:
                depth.add_metric([track, RELEASES[track], state], round(dlq) if state == "dlq" else 0.0)
        yield outcomes
        yield depth


@dataclass
class PromServer:
    """A running Prometheus and the exporter it scrapes."""

    url: str
    traffic: Traffic
    process: subprocess.Popen[bytes]
    exporter: WSGIServer

    def stop(self) -> None:
        """Stop Prometheus (SIGTERM, then SIGKILL) and the exporter."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.exporter.shutdown()
        self.exporter.server_close()


def start(workdir: Path) -> PromServer:
    """Start the exporter and Debian's ``prometheus`` scraping it every 500 ms; wait until scraped."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError(
            "the `prometheus` server is not installed (Debian package prometheus; run ./dev setup)"
        )
    traffic = Traffic()
    registry = CollectorRegistry()
    registry.register(traffic)
    exporter_port = free_port()
    exporter, _thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE}\n"
        "  scrape_timeout: 400ms\n"
        "scrape_configs:\n"
        "  - job_name: preview-worker\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
    )
    port = free_port()
    with (workdir / "prometheus.log").open("wb") as log:  # the child keeps its own copy of the fd
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PromServer(f"http://127.0.0.1:{port}", traffic, process, exporter)
    try:
        _wait_scraped(server, workdir)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_scraped(server: PromServer, workdir: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log = (workdir / "prometheus.log").read_text(errors="replace")
            raise RuntimeError(f"prometheus exited with {server.process.returncode}:\n{log}")
        try:
            body = httpx.get(f"{server.url}/api/v1/query", params={"query": "up"}, timeout=2).json()
            if any(r["value"][1] == "1" for r in body["data"]["result"]):
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"prometheus at {server.url} did not scrape the exporter within 30 s")

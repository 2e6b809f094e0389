"""Debian's ``prometheus`` on loopback, scraping ``/metrics`` endpoints as pods of a namespace.

Each :class:`Target` is labelled with the namespace it stands for, the way
prometheus-operator's ServiceMonitor labels a pod's series, so queries scoped by
``namespace`` (the adapter's rule, KEDA's trigger) behave as in a real cluster.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.errors import ToolchainError
from infra.tools.local.addons.host_processes import HostProcesses

SCRAPE_SECONDS = 1


@dataclass(frozen=True)
class Target:
    """One ``/metrics`` endpoint on loopback and the namespace its series are labelled with.

    ``job``: the ``job`` label, as prometheus-operator sets it (the scraped Service's name);
    by default each target is a job of its own.
    """

    port: int
    namespace: str
    job: str | None = None


def _labels(target: Target) -> dict[str, str]:
    return {"namespace": target.namespace, **({"job": target.job} if target.job else {})}


def prometheus_config(targets: list[Target], scrape_seconds: int = SCRAPE_SECONDS) -> str:
    """A Prometheus config scraping each target every ``scrape_seconds`` with its namespace label."""
    jobs = [
        {
            "job_name": f"preview-worker-{t.port}",
            "static_configs": [{"targets": [f"127.0.0.1:{t.port}"], "labels": _labels(t)}],
        }
        for t in targets
    ]
    settings = {"scrape_interval": f"{scrape_seconds}s", "scrape_timeout": f"{scrape_seconds}s"}
    return json.dumps({"global": settings, "scrape_configs": jobs}, indent=2)  # JSON is YAML


@dataclass
class Prometheus:
    """One Prometheus server (``start`` / ``query`` / ``stop``)."""

    workdir: Path
    targets: list[Target]
    port: int
    _host: HostProcesses = field(init=False)

    def __post_init__(self) -> None:
        self._host = HostProcesses(self.workdir)

    @property
    def url(self) -> str:
        """Where Prometheus answers queries."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Prometheus:
        """Start it and wait until it reports ready."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise ToolchainError("no `prometheus` on PATH: install the Debian package prometheus")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(prometheus_config(self.targets))
        argv = (
            binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
        )  # fmt: skip
        proc = self._host.start("prometheus", argv)
        self._host.wait(f"{self.url}/-/ready", "prometheus", timeout, proc)
        return self

    def query(self, promql: str) -> list[dict[str, object]]:
        """An instant query's result vector."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        result: list[dict[str, object]] = response.json()["data"]["result"]
        return result

    def stop(self) -> None:
        """Stop the server."""
        self._host.stop()

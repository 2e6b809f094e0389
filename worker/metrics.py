"""Every Prometheus metric the worker exports, declared in one place.

Each series carries the ``track`` label (stable/canary) and only bounded label
values (outcomes and queue states from ``worker.constants``), so alert rules
can compare a canary with stable.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from worker import constants as c

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The worker's metrics, bound to one ``track`` and one registry."""

    def __init__(self, track: str, registry: CollectorRegistry | None = None) -> None:
        self.track = track
        self.registry = registry or CollectorRegistry()
        t = c.LABEL_TRACK
        self.outcomes = Counter(
            c.METRIC_JOB_OUTCOMES.removesuffix("_total"),
            "Job outcomes by kind.",
            [t, c.LABEL_OUTCOME],
            registry=self.registry,
        )
        self.duration = Histogram(
            c.METRIC_JOB_DURATION,
            "Wall time of one processing attempt.",
            [t],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            c.METRIC_REQUESTS.removesuffix("_total"), "Jobs taken.", [t], registry=self.registry
        )
        self.failures = Counter(
            c.METRIC_FAILURES.removesuffix("_total"), "Failed attempts.", [t], registry=self.registry
        )
        self.dryrun = Counter(
            c.METRIC_DRYRUN.removesuffix("_total"), "Dry-run jobs validated.", [t], registry=self.registry
        )
        # multiprocess_mode only matters under the per-core supervisor (worker.supervisor), where the
        # pod must report one series: every process reads the same depth, and in-flight jobs add up.
        self.queue_depth = Gauge(
            c.METRIC_QUEUE_DEPTH, "Jobs in the queue by state.", [t, c.LABEL_STATE], registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.active_consumers = Gauge(
            c.METRIC_ACTIVE_CONSUMERS, "Jobs in flight in this process.", [t], registry=self.registry,
            multiprocess_mode="livesum",
        )
        # Pre-create every bounded series so dashboards and rate() see zeros, not gaps.
        for outcome in c.OUTCOMES:
            self.outcomes.labels(track, outcome)
        for state in c.QUEUE_STATES:
            self.queue_depth.labels(track, state)
        for metric in (self.duration, self.requests, self.failures, self.dryrun, self.active_consumers):
            metric.labels(track)

    def outcome(self, outcome: str) -> None:
        """Count one job outcome; ``outcome`` must be one of ``constants.OUTCOMES``."""
        if outcome not in c.OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        self.outcomes.labels(self.track, outcome).inc()
        if outcome == "dryrun":
            self.dryrun.labels(self.track).inc()
        if outcome in ("failed", "retried"):
            self.failures.labels(self.track).inc()

    def set_depth(self, counts: dict[str, int]) -> None:
        """Set the queue-depth gauges from a ``{state: count}`` mapping."""
        for state in c.QUEUE_STATES:
            self.queue_depth.labels(self.track, state).set(counts.get(state, 0))

"""Every Prometheus metric the worker exports, declared in one place.

Each series carries the ``track`` (stable/canary) and ``release`` labels and only bounded label
values (outcomes and queue states from ``worker.constants``), so alert rules and panels can compare
a canary with stable. ``docs/metrics.md`` is generated from these declarations
(:mod:`worker.metrics_doc`).
"""

from __future__ import annotations

import bisect
from collections import Counter as Tally
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

from worker import constants as c
from worker.passes import at_pass_end
from worker.tunables import Tunables

DEFAULT_QUEUE: str = Tunables.model_fields["queue_name"].default

# No `_created` series beside each counter and histogram: they would double the series count and
# nothing here reads them (rate() handles restarts; the scrape's `pod` label tells processes apart).
disable_created_metrics()  # type: ignore[no-untyped-call]

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: An enqueue is a validation plus a few Redis round trips: milliseconds, seconds when Redis struggles.
ENQUEUE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Methods the API's routes accept; any other method is counted as ``OTHER``.
API_METHODS = frozenset({"GET", "HEAD", "POST"})
OTHER = "other"
#: The labels every series of every process carries: constant per process, so they add no series.
PROCESS_LABELS = (c.LABEL_TRACK, c.LABEL_RELEASE)
QUEUE_DEPTH_HELP = (
    "Jobs in the queue by state, read from Redis (every reporter sees the same queue: use max)."
)


class Metrics:
    """The worker's metrics, bound to one ``track``, one ``release``, one queue and one registry.

    ``track`` and ``release`` are on every series (:data:`PROCESS_LABELS`), so every query can
    compare a canary with stable. The queue-depth gauge carries the ``queue`` label too: an HPA's
    External metric selects its own queue with it, and the scrape adds the ``namespace``.
    """

    def __init__(
        self,
        track: str,
        registry: CollectorRegistry | None = None,
        *,
        queue: str = DEFAULT_QUEUE,
        release: str = c.RELEASE_LOCAL,
    ) -> None:
        self.track, self.release = track, release
        self.registry = registry or CollectorRegistry()
        own = (track, release)
        self.jobs_taken_total = Counter(
            c.METRIC_JOBS_TAKEN.removesuffix("_total"),
            "Jobs this process took from the queue, once per attempt (a retried job again).",
            PROCESS_LABELS,
            registry=self.registry,
        )
        self.outcomes = Counter(
            c.METRIC_JOB_OUTCOMES.removesuffix("_total"),
            "Job outcomes, counted once Redis recorded them: each finished job once as completed, "
            "dryrun or failed; dlq and invalid in addition to failed, reused (artifacts an earlier "
            "attempt stored) in addition to completed; retried once per failed attempt that is "
            "retried, unrecorded once per attempt whose finish Redis did not take (lost lock). "
            "reason: the class of error the attempt ended with, none if it ended well.",
            [*PROCESS_LABELS, c.LABEL_OUTCOME, c.LABEL_REASON],
            registry=self.registry,
        )
        self.duration = Histogram(
            c.METRIC_JOB_DURATION,
            "Wall time of one processing attempt, in seconds.",
            PROCESS_LABELS,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.turnaround = Histogram(
            c.METRIC_JOB_TURNAROUND,
            "Seconds from a job's enqueue to its completion (jobs that ended well).",
            PROCESS_LABELS,
            buckets=c.JOB_TURNAROUND_BUCKETS,
            registry=self.registry,
        )
        # multiprocess_mode only matters under the per-core supervisor (worker.process.supervisor), where the
        # pod must report one series: every process reads the same depth, and in-flight jobs add up.
        self.queue_depth = Gauge(
            c.METRIC_QUEUE_DEPTH,
            QUEUE_DEPTH_HELP,
            [*PROCESS_LABELS, c.LABEL_QUEUE, c.LABEL_STATE],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.redis_memory_used = Gauge(
            c.METRIC_REDIS_MEMORY_USED,
            "Memory the queue's Redis uses (INFO memory: used_memory), in bytes, read by housekeeping "
            "(every reporter sees the same Redis: use max).",
            PROCESS_LABELS, registry=self.registry, multiprocess_mode="livemax",
        )  # fmt: skip
        self.redis_maxmemory = Gauge(
            c.METRIC_REDIS_MAXMEMORY,
            "The queue's Redis memory limit (INFO memory: maxmemory), in bytes; 0 when it has none.",
            PROCESS_LABELS, registry=self.registry, multiprocess_mode="livemax",
        )  # fmt: skip
        self.in_flight = Gauge(
            c.METRIC_JOBS_IN_FLIGHT,
            "Jobs being processed now (taken, not yet finished).",
            PROCESS_LABELS,
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        # What the process was told (PREVIEW_CONCURRENCY): in-flight jobs over it is the saturation.
        self.concurrency = Gauge(
            c.METRIC_CONCURRENCY, "Jobs this process takes at once (PREVIEW_CONCURRENCY), as it read them.",
            PROCESS_LABELS, registry=self.registry, multiprocess_mode="livesum",
        )  # fmt: skip
        # Under the supervisor the pod is ready only while every process can fetch: the lowest wins.
        self.fetching = Gauge(
            c.METRIC_FETCHING, "1 while this process's newest attempt to fetch a job succeeded, else 0.",
            PROCESS_LABELS, registry=self.registry, multiprocess_mode="livemin",
        )  # fmt: skip
        self.housekeeping_errors = Counter(
            c.METRIC_HOUSEKEEPING_ERRORS.removesuffix("_total"),
            "Housekeeping errors by step: a step that failed, or one job the sweep could not dead-letter.",
            [*PROCESS_LABELS, c.LABEL_STEP],
            registry=self.registry,
        )
        self.housekeeping_failing = Gauge(
            c.METRIC_HOUSEKEEPING_FAILING,
            f"1 after {c.HOUSEKEEPING_FAILING_ROUNDS} housekeeping rounds in a row had an error, else 0.",
            PROCESS_LABELS, registry=self.registry, multiprocess_mode="livemax",
        )  # fmt: skip
        # Every bounded series is made here, so dashboards and rate() see zeros, not gaps, and
        # the per-job path uses these children instead of looking labels up on each job.
        self._outcomes = {
            (outcome, reason): self.outcomes.labels(*own, outcome, reason)
            for outcome in c.OUTCOMES
            for reason in _reasons(outcome)
        }
        self._depth = {state: self.queue_depth.labels(*own, queue, state) for state in c.QUEUE_STATES}
        self.job_duration = self.duration.labels(*own)
        self.job_turnaround = self.turnaround.labels(*own)
        self.jobs_taken = self.jobs_taken_total.labels(*own)
        self.jobs_in_flight = self.in_flight.labels(*own)
        errors = self.housekeeping_errors
        self._housekeeping_errors = {s: errors.labels(*own, s) for s in c.HOUSEKEEPING_STEPS}
        self._failing = self.housekeeping_failing.labels(*own)
        self._failed_rounds = 0
        self._failing.set(0)
        #: Every family, in the order docs/metrics.md lists them.
        self.declared: tuple[MetricWrapperBase, ...] = (
            self.jobs_taken_total, self.outcomes, self.duration, self.turnaround, self.in_flight,
            self.concurrency, self.fetching, self.housekeeping_errors, self.housekeeping_failing,
            self.queue_depth, self.redis_memory_used, self.redis_maxmemory,
        )  # fmt: skip

    def outcome(self, outcome: str, reason: str = c.REASON_NONE) -> None:
        """Count one job outcome (``constants.OUTCOMES``) with its ``reason`` (``constants.REASONS``)."""
        self.outcome_series(outcome, reason).inc()

    def outcome_series(self, outcome: str, reason: str = c.REASON_NONE) -> Any:
        """The counter :meth:`outcome` increments (for a :class:`PassTally`)."""
        child = self._outcomes.get((outcome, reason))
        if child is None:
            if outcome not in c.OUTCOMES or reason not in c.REASONS:
                raise ValueError(f"unknown outcome {outcome!r} or reason {reason!r}")
            child = self._outcomes[outcome, reason] = self.outcomes.labels(
                self.track, self.release, outcome, reason
            )
        return child

    def set_concurrency(self, concurrency: int) -> None:
        """Record the concurrency this process runs with."""
        self.concurrency.labels(self.track, self.release).set(concurrency)

    def set_fetching(self, fetching: bool) -> None:
        """Record whether the consumer's newest fetch succeeded (the readiness signal)."""
        # Made on the first report, never before: a process that has not tried yet is not counted.
        self.fetching.labels(self.track, self.release).set(1 if fetching else 0)

    def housekeeping_error(self, step: str) -> None:
        """Count one housekeeping error in ``step`` (one of ``constants.HOUSEKEEPING_STEPS``)."""
        self._housekeeping_errors[step].inc()

    def housekeeping_round(self, ok: bool) -> bool:
        """Record one finished housekeeping round; the failing gauge follows the run of failed ones."""
        self._failed_rounds = 0 if ok else self._failed_rounds + 1
        self._failing.set(1 if self._failed_rounds >= c.HOUSEKEEPING_FAILING_ROUNDS else 0)
        return ok

    def set_depth(self, counts: dict[str, int]) -> None:
        """Set the queue-depth gauges from a ``{state: count}`` mapping."""
        for state, gauge in self._depth.items():
            gauge.set(counts.get(state, 0))

    def set_redis_memory(self, used: int, maxmemory: int) -> None:
        """Set the Redis memory gauges (made on the first report: a process that has not read
        Redis yet reports no value rather than a zero)."""
        self.redis_memory_used.labels(self.track, self.release).set(used)
        self.redis_maxmemory.labels(self.track, self.release).set(maxmemory)


class PassTally:
    """Counter and gauge changes and histogram observations made during one event-loop pass,
    applied together when it ends.

    At concurrency 50 a pass finishes many jobs: one ``inc(n)`` per series then replaces one call
    per job, each a lock and, under the per-core supervisor, a write to a multiprocess file (#34).
    Every change is applied, in full, before the next pass (a scrape runs in a pass of its own);
    outside a running loop a change is applied at once.
    """

    def __init__(self) -> None:
        self.pending: dict[Any, float] = {}
        self.observed: dict[Any, list[float]] = {}
        self.scheduled = False

    def __len__(self) -> int:
        """How many series have changes not applied yet."""
        return len(self.pending) + len(self.observed)

    def add(self, series: Any, amount: float = 1) -> None:
        """``series.inc(amount)`` (a counter's or gauge's child), at the end of this pass."""
        pending = self.pending
        pending[series] = pending.get(series, 0) + amount
        self._schedule()

    def observe(self, histogram: Any, value: float) -> None:
        """``histogram.observe(value)`` (a histogram's child; ``value`` finite), at the end of this pass."""
        values = self.observed.get(histogram)
        if values is None:
            self.observed[histogram] = [value]
        else:
            values.append(value)
        self._schedule()

    def _schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            at_pass_end(self.apply)

    def apply(self) -> None:
        """Apply every pending change now (a gauge's changes that add up to 0 are not written)."""
        self.scheduled = False
        pending, self.pending = self.pending, {}
        observed, self.observed = self.observed, {}
        for series, amount in pending.items():
            if amount:
                series.inc(amount)
        for histogram, values in observed.items():
            observe_all(histogram, values)


def observe_all(histogram: Any, values: list[float]) -> None:
    """``histogram.observe(v)`` for each of ``values`` (finite): the same sum and bucket counts, with
    one increment of the sum and one per bucket touched instead of one of each per value.

    prometheus_client has no call for many observations, so this uses the fields its ``observe``
    updates (``_sum``, ``_buckets``, ``_upper_bounds``: a value counts in the first bucket whose
    bound is not below it); ``tests/worker/test_metrics.py`` checks the result against ``observe``.
    """
    bounds = histogram._upper_bounds
    histogram._sum.inc(sum(values))
    for bucket, count in Tally(bisect.bisect_left(bounds, v) for v in values).items():
        histogram._buckets[bucket].inc(count)


class ApiMetrics:
    """The job API's metrics (``python -m worker api``), bound to one ``track``, one ``release`` and
    their own registry.

    ``route`` is a route template or ``constants.ROUTE_UNMATCHED``, ``method`` one of
    ``API_METHODS`` or ``OTHER``, ``status`` the numeric HTTP status: every label is bounded.
    """

    def __init__(
        self,
        track: str,
        registry: CollectorRegistry | None = None,
        queue: str = DEFAULT_QUEUE,
        *,
        release: str = c.RELEASE_LOCAL,
    ) -> None:
        self.track, self.release, self.queue = track, release, queue
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            c.METRIC_API_REQUESTS.removesuffix("_total"),
            "API requests answered, by route template, method and HTTP status (401s and 5xx included).",
            [*PROCESS_LABELS, c.LABEL_ROUTE, c.LABEL_METHOD, c.LABEL_STATUS],
            registry=self.registry,
        )
        self.enqueue_duration = Histogram(
            c.METRIC_API_ENQUEUE_DURATION,
            "Wall time of one POST /api/preview/job, Redis round trips included, in seconds.",
            PROCESS_LABELS,
            buckets=ENQUEUE_BUCKETS,
            registry=self.registry,
        )
        self.enqueue = self.enqueue_duration.labels(track, release)
        # The same series the workers export: the API's pods always run, so the depth is known
        # while KEDA has scaled every worker to zero (infra/manifests/scaling/scaled_object.py).
        self.queue_depth = Gauge(
            c.METRIC_QUEUE_DEPTH,
            QUEUE_DEPTH_HELP,
            [*PROCESS_LABELS, c.LABEL_QUEUE, c.LABEL_STATE],
            registry=self.registry,
        )
        #: Every family, in the order docs/metrics.md lists them.
        self.declared: tuple[MetricWrapperBase, ...] = (
            self.requests,
            self.enqueue_duration,
            self.queue_depth,
        )

    def set_depth(self, counts: dict[str, int]) -> None:
        """Set the queue-depth gauges from a ``{state: count}`` mapping."""
        for state in c.QUEUE_STATES:
            self.queue_depth.labels(self.track, self.release, self.queue, state).set(counts.get(state, 0))

    def clear_depth(self) -> None:
        """Drop the depth series (Redis unreachable): no series is an error to a scaler, never 0 waiting."""
        self.queue_depth.clear()

    def request(self, route: str, method: str, status: int) -> None:
        """Count one answered request."""
        method = method if method in API_METHODS else OTHER
        self.requests.labels(self.track, self.release, route, method, str(status)).inc()


def _reasons(outcome: str) -> tuple[str, ...]:
    """The reasons an outcome's series are made with up front (others are made when first counted)."""
    if outcome in (*c.GOOD_OUTCOMES, c.REUSED_OUTCOME):
        return (c.REASON_NONE,)
    if outcome == c.INVALID_OUTCOME:
        return (c.REASON_INVALID,)
    if outcome == c.UNRECORDED_OUTCOME:
        return c.REASONS
    return tuple(r for r in c.REASONS if r != c.REASON_NONE)

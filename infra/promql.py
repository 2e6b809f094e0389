"""PromQL shared by the alert and SLO rules (``infra/manifests/observability/``), KEDA's trigger
(``infra/manifests/scaling/scaled_object.py``) and the rollout analysis
(``infra/config/sections/rollout_policy.py``, ``infra/tools/release/analysis.py``): one expression of
each ratio and each queue depth."""

from __future__ import annotations

from worker import constants as c

RATE_WINDOW = "5m"


#: Every finished job, counted once (see FINISHED_OUTCOMES in worker/constants.py).
FINISHED = f'{c.LABEL_OUTCOME}=~"{"|".join(c.FINISHED_OUTCOMES)}"'


def failure_ratio(sel: str, window: str = RATE_WINDOW, by: str = "") -> str:
    """Failed jobs over finished jobs matching ``sel`` (invalid input included): the failure-ratio
    threshold of a stack without an availability SLO; everything else compares :func:`availability_ratio`."""
    outcomes = c.METRIC_JOB_OUTCOMES
    return (
        f'sum{by}(rate({outcomes}{{{sel},{c.LABEL_OUTCOME}="{c.FAILED_OUTCOME}"}}[{window}]))'
        f" / sum{by}(rate({outcomes}{{{sel},{FINISHED}}}[{window}]))"
    )


def queue_depth(namespace: str, state: str, queue: str | None = None) -> str:
    """The series of a stack's jobs in ``state`` (every pod of the stack reports the same value)."""
    matchers = [f'{c.LABEL_NAMESPACE}="{namespace}"']
    if queue is not None:
        matchers.append(f'{c.LABEL_QUEUE}="{queue}"')
    matchers.append(f'{c.LABEL_STATE}="{state}"')
    return f"{c.METRIC_QUEUE_DEPTH}{{{','.join(matchers)}}}"


def waiting_jobs(namespace: str, queue: str | None = None) -> str:
    """The jobs a stack's workers have still to take: one number, ``max`` over the pods reporting it."""
    return f"max({queue_depth(namespace, c.STATE_WAITING, queue)})"


def _rate(metric: str, matchers: str, window: str, by: str) -> str:
    return f"sum{by}(rate({metric}{{{matchers}}}[{window}]))"


def availability_events(sel: str, window: str, by: str = "") -> tuple[str, str]:
    """The availability SLI's (bad, total) job rates over ``window``: failed jobs over finished
    jobs, both without the jobs the producer sent invalid (counted as failed *and* invalid)."""
    out, label = c.METRIC_JOB_OUTCOMES, c.LABEL_OUTCOME
    invalid = _rate(out, f'{sel},{label}="{c.INVALID_OUTCOME}"', window, by)
    failed = _rate(out, f'{sel},{label}="{c.FAILED_OUTCOME}"', window, by)
    bad = f"{failed} - {invalid}"
    total = f"{_rate(out, f'{sel},{FINISHED}', window, by)} - {invalid}"
    return bad, total


def latency_events(sel: str, window: str, threshold_seconds: float, by: str = "") -> tuple[str, str]:
    """The latency SLI's (bad, total) job rates over ``window``: jobs that ended well later than
    ``threshold_seconds`` after their enqueue, over all that ended well (the turnaround histogram).

    ``le`` is matched as prometheus_client writes it (``60.0``) and as Prometheus 3 stores it (``60``).
    """
    name, le = c.METRIC_JOB_TURNAROUND, f"{threshold_seconds:g}"
    total = _rate(f"{name}_count", sel, window, by)
    within = _rate(f"{name}_bucket", f'{sel},le=~"{le}|{le}\\\\.0"', window, by)
    return f"{total} - {within}", total


def error_ratio(events: tuple[str, str]) -> str:
    """Bad over total, written as Sloth writes an events SLI (``(bad) / (total)``)."""
    bad, total = events
    return f"({bad})\n/\n({total})"


def availability_ratio(sel: str, window: str, by: str = "") -> str:
    """The availability SLI's error ratio: what the SLO's recording rules, the canary alert and
    ``release rollout``'s analysis (``infra/config/sections/rollout_policy.py``) all compare."""
    return error_ratio(availability_events(sel, window, by))

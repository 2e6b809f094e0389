"""PromQL shared by the alert rules (``infra/manifests/observability/alerts.py``) and the rollout analysis
(``infra/config/sections/rollout_policy.py``, ``infra/tools/release/analysis.py``): one expression of
each ratio."""

from __future__ import annotations

from worker import constants as c

RATE_WINDOW = "5m"


#: Every finished job, counted once (see FINISHED_OUTCOMES in worker/constants.py).
FINISHED = f'{c.LABEL_OUTCOME}=~"{"|".join(c.FINISHED_OUTCOMES)}"'


def failure_ratio(sel: str, window: str = RATE_WINDOW, by: str = "") -> str:
    """Failed jobs over finished jobs matching ``sel``: the one PromQL of the failure alerts and of
    the release tool's rollout analysis (``infra/tools/release/analysis.py``)."""
    outcomes = c.METRIC_JOB_OUTCOMES
    return (
        f'sum{by}(rate({outcomes}{{{sel},{c.LABEL_OUTCOME}="{c.FAILED_OUTCOME}"}}[{window}]))'
        f" / sum{by}(rate({outcomes}{{{sel},{FINISHED}}}[{window}]))"
    )

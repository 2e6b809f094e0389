"""The checks of ``python -m infra verify``, in order, and :func:`run_checks`, which runs them.

The cluster side is in :mod:`infra.tools.verify.cluster`, the services a CI runner reaches (the
job API, Prometheus) in :mod:`infra.tools.verify.services`. Every outcome becomes a
:class:`~infra.tools.verify.target.Row`: a failure's reason, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable

from infra.errors import InfraError
from infra.tools.verify import services
from infra.tools.verify.cluster import check_cluster, check_deployments, check_objects, check_outputs
from infra.tools.verify.target import Row, Target

__all__ = ["CHECKS", "Row", "Target", "check_deployments", "run_checks"]

#: (name, check, the checks it needs): one that needs a failed check is reported as not run.
CHECKS: list[tuple[str, Callable[[Target], str], tuple[str, ...]]] = [
    ("cluster", check_cluster, ()),
    ("outputs", check_outputs, ()),
    ("deployments", check_deployments, ("cluster", "outputs")),
    ("objects", check_objects, ("cluster", "outputs")),
    ("api health", services.check_api_health, ()),
    ("queue", services.check_queue, ("api health",)),
    ("targets", services.check_targets, ("outputs",)),
    ("dry run", services.check_dry_run, ("api health",)),
    ("metrics", services.check_metrics, ("targets", "dry run")),
]


def run_checks(t: Target) -> list[Row]:
    """Every check in order, each outcome a row."""
    rows: dict[str, Row] = {}
    for name, check, needs in CHECKS:
        failed = [n for n in needs if not rows[n].ok]
        if failed:
            rows[name] = Row(name, "not run", f"not run: {' and '.join(failed)} failed")
            continue
        try:
            rows[name] = Row(name, "ok", check(t))
        except InfraError as exc:  # every error of this tool says what was expected and found
            rows[name] = Row(name, "failed", one_line(str(exc)))
        except Exception as exc:  # a malformed answer (a missing key, a wrong type): still a row
            rows[name] = Row(name, "failed", f"unexpected answer: {type(exc).__name__}: {one_line(str(exc))}")
    return list(rows.values())


def one_line(text: str, limit: int = 400) -> str:
    """``text`` on one line, at most ``limit`` characters (a table cell)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"

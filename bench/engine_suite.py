"""The real engine on the path platform teams run: ``pulumi preview`` and ``pulumi up`` of the dev stack.

A local cluster of its own (a throwaway state folder, or ``--cluster``'s running one) and a file
backend of its own; the project runs from a copy (:mod:`infra.tools.local.project`), so nothing in
the work tree changes. Per round: ``preview`` of an empty stack, ``up`` from empty until every
Deployment is Available (the engine waits for that), ``preview --expect-no-changes``,
then ``destroy``. Whole-command wall times, as a user sees them; medians over rounds.
Targets (issue 12): preview under 10 s, up under 60 s on this machine.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.local_engine import local_engine

STACK = "dev"
TARGETS_S = {"preview": 10.0, "up": 60.0}


def _timed(cmd: list[str], environ: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")
    return seconds


def run(rounds: int, shared: Path | None = None) -> dict[str, Any]:
    """Median wall seconds of preview, up, no-change preview and destroy over ``rounds`` rounds
    (on the running cluster of state folder ``shared``, if given)."""
    with local_engine("bench-engine-", shared) as ws:
        environ, project = ws.environ, ws.project
        pulumi = ["pulumi", "--non-interactive"]
        _timed([*pulumi, "stack", "init", STACK], environ, project)
        times: dict[str, list[float]] = {"preview": [], "up": [], "preview_no_changes": [], "destroy": []}
        for _ in range(rounds):
            times["preview"].append(_timed([*pulumi, "preview", "--stack", STACK], environ, project))
            up = [*pulumi, "up", "--stack", STACK, "--yes", "--skip-preview"]
            times["up"].append(_timed(up, environ, project))
            no_change = [*pulumi, "preview", "--stack", STACK, "--expect-no-changes"]
            times["preview_no_changes"].append(_timed(no_change, environ, project))
            destroy = [*pulumi, "destroy", "--stack", STACK, "--yes"]
            times["destroy"].append(_timed(destroy, environ, project))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "rounds": rounds,
        "median_s": medians,
        "all_s": times,
        "targets_s": TARGETS_S,
        "met": {name: medians[name] < limit for name, limit in TARGETS_S.items()},
    }

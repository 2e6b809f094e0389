"""Progressive rollout: walk the canary weight through steps, analysing Prometheus between them.

Each step is an ordinary release (a ``rollout-step`` history line), applied with
``pulumi up`` when an applier is given. After each step's interval the analysis
(:mod:`infra.release.analysis`) runs over that interval; a failed check aborts:
the canary goes to weight 0 with its image cleared (``rollout-abort``, the reason
recorded and printed). When every step passes, the canary becomes stable
(``rollout-complete``). A step of 100 is that completion — prod's policy caps a
running canary at 50%.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from infra.release import actions
from infra.release.analysis import RolloutConfig, analyze, check_steps, duration_seconds
from infra.release.errors import ReleaseError
from infra.release.prometheus import Prometheus
from infra.release.stackfile import StackFile

Applier = Callable[[str], None]


@dataclass(frozen=True)
class RolloutPlan:
    """What one rollout does: the weights, how long each runs, and its analysis config."""

    stack: str
    steps: list[int]
    interval: str
    config: RolloutConfig

    @classmethod
    def build(
        cls, stack: str, config: RolloutConfig, steps: list[int] | None, interval: str | None
    ) -> RolloutPlan:
        """Command-line values override the stack's ``rollout`` defaults."""
        try:
            chosen_steps = check_steps(steps if steps is not None else config.steps)
        except ValueError as exc:
            raise ReleaseError(f"--steps: {exc}") from None
        chosen_interval = interval or config.interval
        try:
            duration_seconds(chosen_interval)
        except ValueError as exc:
            raise ReleaseError(f"--interval: {exc}") from None
        return cls(stack, chosen_steps, chosen_interval, config)


def run(
    root: Path,
    plan: RolloutPlan,
    prom: Prometheus,
    apply: Applier | None = None,
    sleep: Callable[[float], None] = time.sleep,
    out: TextIO | None = None,
) -> bool:
    """Run the rollout; True when the canary became stable, False when it was aborted."""
    out = out or sys.stdout
    sf = actions.open_stack(root, plan.stack)
    if sf.state().canary_image is None:
        raise ReleaseError(
            f"{sf.path.name} has no canary image to roll out; set one with "
            f"`promote --from … --to {plan.stack} --canary N` or "
            f"`canary --stack {plan.stack} --image … --weight N`"
        )
    seconds = duration_seconds(plan.interval)
    weights = [w for w in plan.steps if w < 100]
    for number, weight in enumerate(weights, start=1):
        reason = f"rollout step {number}/{len(weights)}: canary at {weight}%"
        _release(root, sf, actions.canary_step(sf, weight, reason, action="rollout-step"), apply, out)
        print(f"rollout: waiting {plan.interval} before analysing step {number} ({weight}%)", file=out)
        sleep(seconds)
        verdict = analyze(prom, plan.config, plan.interval)
        measured = ", ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in verdict.values.items())
        print(f"rollout: analysis at {weight}%: {measured}", file=out)
        if not verdict.healthy:
            why = "; ".join(verdict.reasons)
            print(f"rollout: ABORTED at {weight}%: {why}", file=out)
            change = actions.canary_abort(sf, f"rollout aborted at {weight}%: {why}", action="rollout-abort")
            _release(root, sf, change, apply, out)
            return False
        print(f"rollout: step {number} healthy", file=out)
    change = actions.canary_complete(sf, "rollout complete: canary is now stable", action="rollout-complete")
    _release(root, sf, change, apply, out)
    print("rollout: COMPLETE — the canary image is stable", file=out)
    return True


def _release(root: Path, sf: StackFile, change: actions.Change, apply: Applier | None, out: TextIO) -> None:
    if actions.commit(root, sf, change, out) is not None and apply is not None:
        apply(sf.stack)

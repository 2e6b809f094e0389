"""Progressive rollout: walk the canary weight through steps, analysing Prometheus between them.

Each step is an ordinary release (a ``rollout-step`` history line), applied with
``pulumi up`` when an applier is given. After each step's interval the analysis
(:mod:`infra.tools.release.analysis`) runs over that interval; a failed check aborts:
the canary goes to weight 0 with its image cleared (``rollout-abort``, the reason
recorded and printed). When every step passes, the canary becomes stable
(``rollout-complete``). A step of 100 is that completion — prod's policy caps a
running canary at 50%.

With git (the default on the command line) the rollout has its own branch, and
each step is committed and pushed before its ``pulumi up``: the cluster is never
more than one step from git. A cancelled run's last commit names its step, and
a rerun resumes there: it re-applies that step, waits and analyses it, and goes on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from infra.config.fields.durations import duration_seconds
from infra.errors import ReleaseError
from infra.tools.release import actions, branches, history
from infra.tools.release.analysis import RolloutConfig, analyze, check_steps
from infra.tools.release.branches import Recorder
from infra.tools.release.history import Entry
from infra.tools.release.promapi import Prometheus
from infra.tools.release.stackfile import StackFile

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
            duration_seconds(chosen_interval, allow_zero=False)
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
    recorder: Recorder | None = None,
) -> bool:
    """Run (or resume) the rollout; True when the canary became stable, False when it was aborted.

    With a ``recorder`` every release is a commit on the rollout's branch, pushed before it is
    applied; a rerun switches to that branch and resumes at the step its last commit names.
    """
    out = out or sys.stdout
    sf = actions.open_stack(root, plan.stack)
    image = sf.state().canary_image
    if image is None:
        raise ReleaseError(
            f"{sf.path.name} has no canary image to roll out; set one with "
            f"`promote --from … --to {plan.stack} --canary N` or "
            f"`canary --stack {plan.stack} --image … --weight N`"
        )
    branch = branches.rollout_branch(plan.stack, image)
    if recorder is not None:
        recorder.check(plan.stack)
        if recorder.resume(branch):
            print(f"rollout: on {branch}, which an earlier run started", file=out)
        else:
            recorder.start(branch)
        sf = actions.open_stack(root, plan.stack)  # the branch may be further along
    entries = history.read(root, plan.stack)
    ended = _ended(entries, image)
    if ended is not None:
        print(f"rollout: already ended on {branch} with {ended.action} {ended.id}; nothing to do", file=out)
        _open(recorder, branch, ended)
        return ended.action == COMPLETE
    weights = [w for w in plan.steps if w < 100]
    resume = _resume_step(entries, image, weights, plan.interval, branch)
    seconds = duration_seconds(plan.interval, allow_zero=False)
    record = {"image": image, "steps": weights, "interval": plan.interval}
    for number, weight in enumerate(weights, start=1):
        label = f"step {number}/{len(weights)} at {weight}%"
        if number < resume:
            continue
        if number == resume:
            print(f"rollout: resuming {label}, where {branch}'s last commit stopped", file=out)
            if apply is not None:
                apply(sf.stack)  # the commit was pushed before its `pulumi up`: bring the cluster to it
        else:
            change = actions.canary_step(sf, weight, f"rollout {label}", action=STEP)
            change = replace(change, details={"rollout": {**record, "step": number}})
            _release(root, sf, change, apply, out, recorder, branch, label)
        print(f"rollout: waiting {plan.interval} before analysing {label}", file=out)
        sleep(seconds)
        verdict = analyze(prom, plan.config, plan.interval)
        measured = ", ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in verdict.values.items())
        print(f"rollout: analysis at {weight}%: {measured}", file=out)
        if not verdict.healthy:
            why = "; ".join(verdict.reasons)
            print(f"rollout: ABORTED at {weight}%: {why}", file=out)
            change = actions.canary_abort(sf, f"rollout aborted at {weight}%: {why}", action=ABORT)
            change = replace(change, details={"rollout": {**record, "step": number}})
            entry = _release(root, sf, change, apply, out, recorder, branch, f"aborted at {label}")
            _open(recorder, branch, entry)
            return False
        print(f"rollout: step {number} healthy", file=out)
    change = actions.canary_complete(sf, "rollout complete: canary is now stable", action=COMPLETE)
    change = replace(change, details={"rollout": {**record, "step": len(weights)}})
    entry = _release(root, sf, change, apply, out, recorder, branch, "complete")
    print("rollout: COMPLETE — the canary image is stable", file=out)
    _open(recorder, branch, entry)
    return True


STEP, ABORT, COMPLETE = "rollout-step", "rollout-abort", "rollout-complete"


def _ended(entries: list[Entry], image: str) -> Entry | None:
    """The abort or completion that already ended this image's rollout (a rerun after the end)."""
    last = entries[-1] if entries else None
    if last is not None and last.action in (ABORT, COMPLETE) and _rollout(last).get("image") == image:
        return last
    return None


def _resume_step(entries: list[Entry], image: str, weights: list[int], interval: str, branch: str) -> int:
    """The step the branch's last commit started (0: a fresh rollout); refuses a different plan."""
    last = entries[-1] if entries else None
    if last is None or last.action != STEP or _rollout(last).get("image") != image:
        return 0
    recorded = _rollout(last)
    if recorded.get("steps") != weights or recorded.get("interval") != interval:
        raise ReleaseError(
            f"{branch} holds a rollout of steps {recorded.get('steps')} every {recorded.get('interval')}, "
            f"not {weights} every {interval}: rerun with those to resume it, or end it with "
            f"`canary --stack {last.stack} --abort`"
        )
    return int(recorded.get("step", 0))


def _rollout(entry: Entry) -> dict[str, Any]:
    value = entry.details.get("rollout")
    return value if isinstance(value, dict) else {}


def _release(
    root: Path,
    sf: StackFile,
    change: actions.Change,
    apply: Applier | None,
    out: TextIO,
    recorder: Recorder | None,
    branch: str,
    label: str,
) -> Entry | None:
    """Write the step; commit and push it; then apply it (git leads the cluster by at most one step)."""
    entry = actions.commit(root, sf, change, out)
    if entry is None:
        return None
    if recorder is not None:
        recorder.commit(entry, branch, step=label)
    if apply is not None:
        apply(sf.stack)
    return entry


def _open(recorder: Recorder | None, branch: str, entry: Entry | None) -> None:
    if recorder is None or entry is None:
        return
    title = branches.message(entry).splitlines()[0]
    body = (
        f"Rollout of `{_rollout(entry).get('image')}` on stack `{entry.stack}` ended with "
        f"{entry.action} ({entry.reason}).\n\nEvery step is a commit on `{branch}`, applied as it "
        f"was made; merging brings `main` in step, and the merge's `pulumi up` changes nothing.\n\n"
        f"```\n{history.table(history.read(recorder.root, entry.stack))}\n```\n"
    )
    recorder.open_pull_request(branch, title, body)

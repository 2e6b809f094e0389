"""``release guard --stack S``: a deploy of ``main`` must not undo a rollout that is not in ``main``.

A rollout applies its steps from its own branch, ``release/<stack>/rollout-<digest>``, and
reaches ``main`` only when its pull request merges at the end. Meanwhile ``main``'s stack
file still holds the pre-rollout image and weight, so a merge that deploys that stack (for
the first stack of the promotion path, any program change does) would silently put them
back. ``main.yml`` runs this before every ``pulumi up``: it refuses while a rollout branch of
the stack (on the remote, else in the clone) holds a release that the base branch's history
does not, which covers a running rollout, one stopped mid-step, and one that ended but whose
pull request has not merged. Any merge style counts: the check compares release IDs, not commits.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from infra.tools.release import branches, history
from infra.tools.release import report as report_json
from infra.tools.release.branches import Recorder


@dataclass(frozen=True)
class OpenRollout:
    """A rollout branch whose last release is not in the base branch."""

    branch: str
    release_id: str
    where: str  # the last commit's Rollout-Step trailer (e.g. ``step 2/3 at 25%``, ``complete``)


def open_rollouts(recorder: Recorder, stack: str) -> list[OpenRollout]:
    """The stack's rollout branches (the remote's when there is one) not yet in the base branch."""
    base = recorder.base_commit()  # fetched now from the remote, else the local branch
    in_base = {e.id for e in _history(recorder, base, stack)}
    prefix = f"{branches.PREFIX}/{stack}/rollout-"
    if recorder.has_remote():
        remote = recorder.git("ls-remote", "--heads", recorder.remote, f"refs/heads/{prefix}*").stdout
        names = [line.split("refs/heads/", 1)[1] for line in remote.splitlines() if "refs/heads/" in line]
        tips = {}
        for name in names:
            recorder.git("fetch", "--quiet", recorder.remote, f"refs/heads/{name}")
            tips[name] = recorder.git("rev-parse", "FETCH_HEAD").stdout.strip()
    else:
        local = recorder.git(
            "for-each-ref", "--format=%(refname:short) %(objectname)", f"refs/heads/{prefix}*"
        )
        tips = dict(line.split(" ", 1) for line in local.stdout.splitlines() if line.strip())
    found = []
    for name, tip in sorted(tips.items()):
        entries = _history(recorder, tip, stack)
        if not entries or entries[-1].id in in_base:
            continue
        step = recorder.git("log", "-1", f"--format=%(trailers:key={branches.TRAILER_STEP},valueonly)", tip)
        found.append(OpenRollout(name, entries[-1].id, step.stdout.strip() or entries[-1].action))
    return found


def _history(recorder: Recorder, commit: str, stack: str) -> list[history.Entry]:
    path = f"{history.HISTORY_DIR}/{stack}.jsonl"
    shown = recorder.git("show", f"{commit}:{path}", check=False)
    return history.parse(shown.stdout, f"{commit[:12]}:{path}") if shown.returncode == 0 else []


def report(recorder: Recorder, stack: str, out: TextIO) -> int:
    """0 when deploying the base branch's stack file undoes no rollout, else 1 saying what to do."""
    recorder.require_work_tree()
    found = open_rollouts(recorder, stack)
    base = f"{recorder.remote}/{recorder.base}" if recorder.has_remote() else recorder.base
    report_json.put(
        stack=stack, base=base,
        openRollouts=[{"branch": r.branch, "releaseId": r.release_id, "step": r.where} for r in found],
    )  # fmt: skip
    if not found:
        print(
            f"guard: no rollout of {stack} outside {base}; deploying its Pulumi.{stack}.yaml undoes nothing",
            file=out,
        )
        return 0
    for rollout in found:
        print(
            f"guard: refusing to deploy {stack}: rollout {rollout.branch} is not in {base} "
            f"(last commit: {rollout.where}, release {rollout.release_id}); {base}'s Pulumi.{stack}.yaml "
            "would undo what it applied",
            file=sys.stderr,
        )
    print(
        "  nothing was deployed. The rollout's pull request brings main in step when it ends, and that "
        f"merge deploys {stack} with this change too. A stopped rollout: rerun it to finish (release.yml, "
        "same steps). To give it up instead, delete its branch and rerun this job: main's file deploys.",
        file=sys.stderr,
    )
    return 1

"""Break-glass rollback: from ``release rollback --apply`` to the previous digest live and Available.

A local cluster of its own (a throwaway state folder), a file backend of its own and a project
copy in a git repository whose origin is a bare repository on disk. Set-up: two pins of the
dev stack (D1, then D2), each applied and merged. Per round, from a fresh clone of ``main`` (an
on-call laptop or a runner): ``python -m infra release rollback --stack dev --apply`` — cut from
origin's main, validated, the branch pushed, ``pulumi preview`` and ``pulumi up`` with the policy
pack — then the wall time until the stable Deployment runs D1 and is Available with every
replica updated, read from the API server. Between rounds the rollback's branch merges and D2 is
applied again. The stack's drain is 1 s (as in the end-to-end tests), so replaced pods go quickly.
Target (issue 28): under 60 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.local_engine import local_engine

STACK, NAMESPACE, DEPLOYMENT = "dev", "preview-dev", "preview-worker-stable"
REPO = "127.0.0.1:5000/mobius/preview-worker"
D1, D2 = f"{REPO}@sha256:{'1' * 64}", f"{REPO}@sha256:{'2' * 64}"
TARGET_S = 60.0
IDENTITY = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
            for what, value in (("NAME", "Bench On-call"), ("EMAIL", "bench@example.test"))}  # fmt: skip


def _run(cmd: list[str], environ: dict[str, str], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")
    return done.stdout


def _release(root: Path, environ: dict[str, str], *argv: str) -> str:
    cmd = [sys.executable, "-m", "infra", "release", "--root", str(root), *argv, "--reason", "bench"]
    return _run(cmd, environ, root)


def _merge_new_branch(work: Path, environ: dict[str, str], before: set[str]) -> None:
    """The release's pull request merges: its branch becomes origin's main, the work tree pulls."""
    (branch,) = _remote_branches(work, environ) - before
    _run(["git", "fetch", "-q", "origin", f"refs/heads/{branch}"], environ, work)
    _run(["git", "push", "-q", "origin", "FETCH_HEAD:refs/heads/main"], environ, work)
    _run(["git", "pull", "-q", "--ff-only", "origin", "main"], environ, work)


def _remote_branches(work: Path, environ: dict[str, str]) -> set[str]:
    listed = _run(["git", "ls-remote", "--heads", "origin", "refs/heads/release/*"], environ, work)
    return {line.split("refs/heads/", 1)[1] for line in listed.splitlines()}


def _live(environ: dict[str, str], cwd: Path) -> tuple[str, bool]:
    """The stable Deployment's image, and whether it is Available with every replica updated."""
    found = subprocess.run(
        ["kubectl", "-n", NAMESPACE, "get", "deployment", DEPLOYMENT, "-o", "json"],
        cwd=cwd, env=environ, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if found.returncode != 0:
        return "", False
    d = json.loads(found.stdout)
    image = d["spec"]["template"]["spec"]["containers"][0]["image"]
    status, want = d.get("status", {}), d["spec"].get("replicas", 1)
    available = any(c["type"] == "Available" and c["status"] == "True" for c in status.get("conditions", []))
    settled = status.get("updatedReplicas") == want and status.get("availableReplicas", 0) >= want
    return image, available and settled and status.get("observedGeneration") == d["metadata"]["generation"]


def run(rounds: int, shared: Path | None = None) -> dict[str, Any]:
    """Wall seconds from the command to D1 live and Available, per round; their median (on the
    running cluster of state folder ``shared``, if given)."""
    with local_engine("bench-rollback-", shared) as ws:
        root, environ = ws.root, {**ws.environ, **IDENTITY}
        # No `gh`: its pull request would need GitHub; the command prints how to open it instead.
        environ["PATH"] = os.pathsep.join(
            d for d in environ["PATH"].split(os.pathsep) if d and not (Path(d) / "gh").exists()
        )
        work = ws.project
        stack_file = work / f"Pulumi.{STACK}.yaml"
        key = "  mobius-preview-worker:worker:\n"
        stack_file.write_text(stack_file.read_text().replace(key, f"{key}    drainSeconds: 1\n", 1))
        for cmd in (["init", "-q", "-b", "main"], ["add", "--all"], ["commit", "-qm", "bench"]):
            _run(["git", *cmd], environ, work)
        _run(["git", "init", "-q", "--bare", "-b", "main", str(root / "origin.git")], environ, root)
        _run(["git", "remote", "add", "origin", str(root / "origin.git")], environ, work)
        _run(["git", "push", "-q", "origin", "main"], environ, work)
        _run(["pulumi", "--non-interactive", "stack", "init", STACK], environ, work)
        for image in (D1, D2):
            before = _remote_branches(work, environ)
            _release(work, environ, "pin", "--stack", STACK, "--image", image, "--apply")
            _merge_new_branch(work, environ, before)
        times: list[float] = []
        for number in range(rounds):
            clone = root / f"on-call-{number}"
            _run(
                ["git", "clone", "-q", "--branch", "main", str(root / "origin.git"), str(clone)],
                environ,
                root,
            )
            before = _remote_branches(work, environ)
            started = time.perf_counter()
            _release(clone, environ, "rollback", "--stack", STACK, "--apply")
            while _live(environ, work) != (D1, True):
                if time.perf_counter() - started > 600:
                    raise RuntimeError(f"{DEPLOYMENT} never ran {D1} Available: {_live(environ, work)}")
                time.sleep(0.2)
            times.append(time.perf_counter() - started)
            _merge_new_branch(work, environ, before)  # the rollback's pull request merges
            if number + 1 < rounds:
                before = _remote_branches(work, environ)
                _release(work, environ, "pin", "--stack", STACK, "--image", D2, "--apply")
                _merge_new_branch(work, environ, before)
        _run(["pulumi", "--non-interactive", "destroy", "--stack", STACK, "--yes"], environ, work)
    median = statistics.median(times)
    return {
        "rounds": rounds,
        "median_s": median,
        "all_s": times,
        "target_s": TARGET_S,
        "met": median < TARGET_S,
    }

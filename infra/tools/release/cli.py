"""``python -m infra release pin|canary|promote|rollback|history|status|rollout|changed|check-base|guard``.

Every command edits ``Pulumi.<stack>.yaml`` (or only reads it), appends to
``releases/<stack>.jsonl``, prints the diff, and commits both files on a branch
named for the release (:mod:`infra.tools.release.branches`): a release is a pull
request, and merging it deploys. ``--push`` pushes the branch and opens the
pull request; ``--apply`` also runs ``pulumi up`` (local and break-glass use;
the history line and the commit say so); ``--no-git`` only edits the files.
Exit codes: 0 done (or nothing to do), 1 refused (nothing written) or rollout
aborted, 2 usage error (a stack file that is not YAML too). ``--json`` prints one JSON
document on stdout instead (:mod:`infra.tools.release.report`; the human output goes to stderr).
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from infra.errors import ConfigError, EngineError, InfraError, ReleaseError, StackFileError
from infra.tools.release import (
    actions,
    branches,
    changes,
    cut,
    engine,
    history,
    report,
    rollout,
    signature_gate,
    stale,
    status_table,
)
from infra.tools.release import status as stack_status
from infra.tools.release.actions import DeployedDigest
from infra.tools.release.analysis import load_rollout_config
from infra.tools.release.branches import Recorder
from infra.tools.release.guard import report as guard_report
from infra.tools.release.promapi import Prometheus
from infra.tools.release.stackfile import StackFile, stack_path
from infra.tools.release.unrestored import lines as unrestored_lines

#: ``pulumi up`` of a stack in a root (:func:`infra.tools.release.engine.apply`): the root a release
#: was written in, its own work tree when it is committed.
Apply = Callable[[Path, str], None]


def _weights(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated integers like 10,25,50,100, got {text!r}"
        ) from None


def stack_flag(p: argparse.ArgumentParser) -> None:
    """``--stack``, defaulting to ``$PULUMI_STACK`` (required when that is unset)."""
    env = os.environ.get("PULUMI_STACK") or None
    p.add_argument("--stack", required=env is None, default=env, help="the stack (default: $PULUMI_STACK)")


def parser() -> argparse.ArgumentParser:
    """The command line (also used by the workflow tests to check every invocation in CI)."""
    top = argparse.ArgumentParser(
        prog="python -m infra release",
        description="Releases as reviewable edits of Pulumi.<stack>.yaml, recorded in releases/.",
    )
    top.add_argument("--root", type=Path, default=None, help="repository root (default: found from cwd)")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, apply: bool = True, reason: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--json", action="store_true", help="print one JSON document (docs/releases.md#json)")
        if reason:
            p.add_argument("--reason", help="why; recorded in the history")
        if apply:
            p.add_argument(
                "--apply",
                action="store_true",
                help="also run `pulumi up` now (local and break-glass use; recorded as such)",
            )
            git = p.add_mutually_exclusive_group()
            git.add_argument(
                "--push",
                action="store_true",
                help="push the release branch and open its pull request (with gh, where installed)",
            )
            git.add_argument(
                "--no-git", action="store_true", help="only edit the stack file and history; commit nothing"
            )
            p.add_argument("--base", default="main", help="the pull request's base branch (default: main)")
        return p

    p = command("pin", "set a stack's stable image (repository@sha256:…, never a tag)")
    stack_flag(p)
    p.add_argument("--image", required=True)

    p = command("canary", "start, step, abort or complete a stack's canary")
    stack_flag(p)
    p.add_argument("--image", help="the canary image (starts a canary; needs --weight)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--weight", type=int, help="canary share of concurrency slots, percent")
    mode.add_argument("--abort", action="store_true", help="weight 0 and the canary image cleared")
    mode.add_argument("--complete", action="store_true", help="make the canary image stable")

    p = command("promote", "carry the image a source stack runs to a target stack")
    p.add_argument("--from", dest="source", required=True)
    p.add_argument("--to", dest="target", required=True)
    p.add_argument("--canary", type=int, metavar="N", help="as a canary at N%% instead of straight to stable")
    p.add_argument("--force", action="store_true", help="skip the deployed-digest gate (needs --reason)")

    p = command("rollback", "restore the previous (or the named) release, byte for byte")
    stack_flag(p)
    p.add_argument("--to", dest="release_id", metavar="ID", help="release ID to restore (see `history`)")

    p = command("history", "a stack's releases as a table", apply=False, reason=False)
    stack_flag(p)

    p = command(
        "status",
        "the stack file, the last `pulumi up`, the live cluster and open release branches, side by side",
        apply=False,
        reason=False,
    )
    stack_flag(p)

    p = command("changed", "what a merge deploys: stacks=[…] and image=true|false", apply=False, reason=False)
    p.add_argument("--base", required=True, metavar="SHA", help="the commit before the merge")
    p.add_argument("--head", required=True, metavar="SHA", help="the merge commit")

    p = command(
        "check-base",
        "fail if a release's stack file changed on the base branch since the release was cut",
        apply=False,
        reason=False,
    )
    p.add_argument("--base", required=True, metavar="REF", help="the pull request's base, e.g. origin/main")
    p.add_argument("--head", default="HEAD", metavar="REF", help="the release branch (default: HEAD)")

    p = command(
        "guard",
        "fail while a rollout of the stack is not in the base branch (main.yml runs it before `up`)",
        apply=False,
        reason=False,
    )
    stack_flag(p)
    p.add_argument("--base", default="main", help="the branch deploys come from (default: main)")

    # Rollout writes its own reasons (step, abort with the failed check, completion).
    p = command("rollout", "walk the canary through weights, checking Prometheus between steps", reason=False)
    stack_flag(p)
    p.add_argument("--steps", type=_weights, help="weights, e.g. 10,25,50,100 (default: stack config)")
    p.add_argument("--interval", help="time per step, e.g. 10m (default: stack config)")
    p.add_argument("--prometheus", required=True, metavar="URL")
    return top


def find_root(start: Path) -> Path:
    """The nearest directory holding ``Pulumi.yaml`` (the repository root)."""
    for candidate in (start, *start.parents):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    return start


def execute(argv: list[str], deployed: DeployedDigest | None = None, out: TextIO | None = None) -> int:
    """Run one release command in this process, its report printed to ``out`` (default stdout).

    The exit code of a command that ran (a rollout's abort is 1); a refusal raises its
    :class:`~infra.errors.InfraError` (``python -m infra image build --stack`` pins this way).
    ``deployed`` replaces the engine lookup of the promote gate.
    """
    args = parser().parse_args(argv)
    root = (args.root or find_root(Path.cwd())).resolve()
    # Called with the root the release was written in (its own work tree, with git).
    apply: Apply | None = engine.apply if getattr(args, "apply", False) else None
    deployed = deployed or functools.partial(engine.deployed_digest, root)
    return _run(root, args, deployed, apply, out or sys.stdout)


def main(argv: list[str], deployed: DeployedDigest | None = None) -> int:
    """Run one release command; ``deployed`` replaces the engine lookup of the promote gate."""
    if "--json" in argv and getattr(parser().parse_args(argv), "json", False):
        plain = [a for a in argv if a != "--json"]
        return report.run_json(parser().parse_args(argv).command, lambda: main(plain, deployed))
    try:
        return execute(argv, deployed)
    except ConfigError as exc:
        print(
            f"release: refused, the result would not be a valid stack file; nothing written.\n{exc}",
            file=sys.stderr,
        )
        return 1
    except StackFileError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 2
    except EngineError as exc:
        # Raised by --apply after the stack file and history were written, or by the promote gate.
        print(f"release: engine: {exc}", file=sys.stderr)
        return 1
    except InfraError as exc:
        print(f"release: refused: {exc}", file=sys.stderr)
        return 1


def _run(
    root: Path, args: argparse.Namespace, deployed: DeployedDigest, apply: Apply | None, out: TextIO
) -> int:
    if args.command == "changed":
        paths = changes.changed_paths(root, args.base, args.head)
        report.put(stacks=changes.stacks_to_deploy(paths), image=changes.image_changed(paths))
        print(changes.outputs(paths), end="", file=out)
        return 0
    if args.command == "check-base":
        return stale.report(root, args.base, args.head, out)
    if args.command == "history":
        actions.open_stack(root, args.stack)  # refuses unknown stacks
        entries = history.read(root, args.stack)
        report.put(stack=args.stack, releases=[e.to_json() for e in entries])
        print(history.table(entries), file=out)
        return 0
    if args.command == "status":
        found = stack_status.gather(root, actions.open_stack(root, args.stack))
        report.put(**found.to_json())
        print(status_table.render(found), file=out)
        return 0
    if args.command == "guard":
        stack_path(root, args.stack)  # refuses what is not a stack of this repository
        return guard_report(Recorder(root, base=args.base), args.stack, out)
    recorder = None if args.no_git else Recorder(root, push=args.push, base=args.base, out=out)
    if args.command == "rollout":
        if recorder is None:
            return _rollout(root, args, apply, out, None)
        stack_path(root, args.stack)
        # Cut like every release: a work tree of the remote's fresh default branch (or the rollout's
        # branch, when it resumes), so the checkout is untouched and a rollout never starts stale.
        with cut.release_tree(recorder) as tree:
            return _rollout(tree.root, args, apply, out, tree)
    if recorder is None:
        return _release(root, args, deployed, apply, out, None)
    # Unknown stacks are refused here, before anything is fetched or a work tree made.
    for flag, name in (("--stack", "stack"), ("--to", "target"), ("--from", "source")):
        if getattr(args, name, None) is not None:
            stack_path(root, getattr(args, name), flag)
    with cut.release_tree(recorder) as tree:
        return _release(tree.root, args, deployed, apply, out, tree)


def _rollout(
    root: Path, args: argparse.Namespace, apply: Apply | None, out: TextIO, recorder: Recorder | None
) -> int:
    sf = actions.open_stack(root, args.stack)
    plan = rollout.RolloutPlan.build(args.stack, load_rollout_config(sf.path), args.steps, args.interval)
    applier = None if apply is None else functools.partial(apply, root)
    with Prometheus(args.prometheus) as prom:
        return 0 if rollout.run(root, plan, prom, applier, out=out, recorder=recorder) else 1


def _release(
    root: Path,
    args: argparse.Namespace,
    deployed: DeployedDigest,
    apply: Apply | None,
    out: TextIO,
    recorder: Recorder | None,
) -> int:
    """One release written in ``root``: with a recorder, a fresh work tree of the default branch."""
    stack = args.target if args.command == "promote" else args.stack
    sf = actions.open_stack(root, stack, "--to" if args.command == "promote" else "--stack")
    change = _change(root, sf, args, deployed)
    signature_gate.check(sf, change.after, out)  # before anything is written or committed
    if apply is not None:
        change = replace(change, details={**(change.details or {}), "applied": APPLIED})
    if recorder is None:
        pending = actions.prepare(root, sf, change)
    else:
        pending = actions.prepare(root, sf, change, recorder.taken_ids(stack), secrets.token_hex(2))
    if pending is None:
        print(f"{sf.path.name}: already at the requested release; nothing to do", file=out)
        return 0
    branch = branches.release_branch(stack, pending.entry.id)
    if recorder is not None:
        recorder.check(stack, branch)
    entry = actions.write(root, sf, pending, out)
    if args.command == "rollback":
        print("\n".join(unrestored_lines(root, stack, str(entry.details["restores"]), sf.text)), file=out)
    if recorder is None:
        print("next:", file=out)
        print(f"  pulumi preview --stack {stack} --diff", file=out)
        print(f"  pulumi up --stack {stack}    # or rerun this command with --apply", file=out)
    else:
        if apply is not None and not recorder.push and recorder.has_remote():
            # Break-glass: the record reaches the remote before the cluster changes, from any clone.
            recorder.push = True
            print("  --apply: pushing the release branch before `pulumi up`", file=out)
        base = cut.blob(recorder, sf.path.name)
        recorder.start(branch)
        recorder.commit(entry, branch, base=base)
        tip = f"{recorder.remote}/{recorder.base}" if recorder.has_remote() else recorder.base
        print(f"  cut from {tip} in a work tree of its own: this checkout is unchanged", file=out)
        if apply is None:
            recorder.open_pull_request(branch, branches.message(entry).splitlines()[0], _body(entry, apply))
    if apply is not None:
        apply(root, stack)
        if recorder is not None:  # only now does its description ("already applied") hold
            recorder.open_pull_request(branch, branches.message(entry).splitlines()[0], _body(entry, apply))
    return 0


#: The history line's ``details.applied`` of a release applied from the command line.
APPLIED = "--apply (applied from the command line, before review)"


def _body(entry: history.Entry, apply: Apply | None) -> str:
    """The pull request's description."""
    lines = [
        f"Release `{entry.id}` of stack `{entry.stack}`: {entry.action}, by {entry.author}.",
        "",
        entry.reason or "(no reason given)",
        "",
        "```",
        history.table([entry]),
        "```",
        "",
    ]
    if apply is not None:
        lines.append(
            f"Already applied with `--apply` (break-glass): merging brings `main` in step with the "
            f"cluster, and the merge's `pulumi up --stack {entry.stack}` changes nothing."
        )
    else:
        lines.append(
            f"The `pulumi preview --stack {entry.stack}` check shows what merging will do; "
            f"merging runs `pulumi up --stack {entry.stack}`."
        )
    return "\n".join(lines) + "\n"


def _change(root: Path, sf: StackFile, args: argparse.Namespace, deployed: DeployedDigest) -> actions.Change:
    reason = args.reason
    if args.command == "pin":
        return actions.pin(sf, args.image, reason)
    if args.command == "canary":
        if args.image is not None and args.weight is None:
            raise ReleaseError("--image starts a canary and needs --weight N")
        if args.abort:
            return actions.canary_abort(sf, reason)
        if args.complete:
            return actions.canary_complete(sf, reason)
        if args.image is not None:
            return actions.canary_start(sf, args.image, args.weight, reason)
        return actions.canary_step(sf, args.weight, reason)
    if args.command == "promote":
        if args.source == args.target:
            raise ReleaseError("--from and --to name the same stack")
        source = actions.open_stack(root, args.source, "--from")
        return actions.promote(source, sf, deployed, args.canary, args.force, reason)
    return actions.rollback(root, sf, args.release_id, reason)

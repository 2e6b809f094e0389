"""``python -m infra ci plugins|kubeconfig``: the workflow steps that are not Pulumi itself.

On GitHub's hosted runners the Pulumi CLI comes from ``pulumi/actions`` (pinned
by commit, at :data:`~infra.tools.local.toolchain.versions.PULUMI_VERSION`); these commands do
the rest, so every script step in ``.github/workflows/`` is a repository command
that the tests run too:

* ``plugins``: ``pulumi plugin install`` of each resource plugin the program
  needs, at the version ``infra/tools/local/toolchain/versions.py`` pins (the language host is
  bundled with the CLI);
* ``kubeconfig``: write the cluster credentials a job's environment provides to
  a private file and point ``KUBECONFIG`` at it, refusing anything that is not a
  kubeconfig without ever printing its content;
* ``identity``: make the GitHub actor the git author of release commits;
* ``registry-login``: ``buildah login`` with a token read from the environment;
* ``dispatch``: turn ``release.yml``'s inputs (environment variables, validated
  here) into one ``python -m infra release`` command, and run it;
* ``path``: ``path=fast`` for a pull request that changes only stack files and release
  history, else ``path=full`` (:mod:`infra.tools.ci.path`), for ``$GITHUB_OUTPUT``.
* ``backend``: check that ``PULUMI_BACKEND`` (a repository variable: url, cloud, s3, gcs,
  azblob) and the job's backend secrets agree (:mod:`infra.tools.ci.backend`);
* ``preview-access``: print the preview account, its RBAC and its dry-run-only admission
  policy for one stack, for a cluster admin's ``kubectl apply -f -``
  (:mod:`infra.manifests.preview_access`).

Exit codes: 0 done, 1 a command failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from infra import runner
from infra.config.model import load_stack_file
from infra.errors import ConfigError, ImageError, InfraError, InputError, ReleaseError, ToolchainError
from infra.manifests.preview_access import preview_access
from infra.tools.ci import backend, path
from infra.tools.local.toolchain import plugins
from infra.tools.local.toolchain.versions import ENGINE_TOOLS, GoTool, tool
from infra.tools.release import stacks


def needed_plugins() -> list[GoTool]:
    """The resource plugins of the engine toolchain (what ``pulumi up`` of the program loads)."""
    return [tool(name) for name in ENGINE_TOOLS if tool(name).install == "plugin"]


def install_commands() -> list[list[str]]:
    """``pulumi plugin install <kind> <name> <version>`` for each needed plugin."""
    return [["pulumi", "plugin", "install", *plugins.kind_and_name(t), t.version] for t in needed_plugins()]


def _plugins(args: argparse.Namespace) -> int:
    for cmd in install_commands():
        print("+ " + " ".join(cmd), flush=True)
        if args.print_only:
            continue
        if shutil.which("pulumi") is None:
            print("ci plugins: no pulumi on PATH (install it with pulumi/actions first)", file=sys.stderr)
            return 1
        # Not captured: pulumi's download progress shows in the job's log as it happens.
        runner.run(cmd, error=ToolchainError, timeout=600, capture=False)
    return 0


def check_kubeconfig(text: str) -> str | None:
    """What is wrong with ``text`` as a kubeconfig (None when it is one); never quotes it."""
    if not text.strip():
        return "is empty (is the secret set in this job's environment?)"
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return "is not YAML"
    if not isinstance(doc, dict) or doc.get("kind") != "Config":
        return "is not a kubeconfig (no `kind: Config`)"
    for key in ("clusters", "users", "contexts"):
        if not isinstance(doc.get(key), list) or not doc[key]:
            return f"is not a kubeconfig (no `{key}` list)"
    return None


def _kubeconfig(args: argparse.Namespace) -> int:
    text = os.environ.get(args.env, "")
    problem = check_kubeconfig(text)
    if problem is not None:
        print(f"ci kubeconfig: ${args.env} {problem}", file=sys.stderr)
        return 2
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
    os.chmod(out, 0o600)
    line = f"KUBECONFIG={out}\n"
    github_env = os.environ.get("GITHUB_ENV")
    if github_env:
        with open(github_env, "a", encoding="utf-8") as handle:
            handle.write(line)
    else:
        sys.stdout.write(f"export {line}")
    return 0


#: GitHub's login names: alphanumerics and single hyphens, at most 39 (bots end in ``[bot]``).
_ACTOR = re.compile(r"[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}(\[bot\])?")


def identity(env: Mapping[str, str]) -> tuple[str, str]:
    """``(name, email)`` of the GitHub actor, with GitHub's no-reply address."""
    actor = env.get("GITHUB_ACTOR", "")
    if not _ACTOR.fullmatch(actor):
        raise InputError(f"GITHUB_ACTOR: {actor!r} is not a GitHub login")
    actor_id = env.get("GITHUB_ACTOR_ID", "")
    local = f"{actor_id}+{actor}" if actor_id.isdigit() else actor
    return actor, f"{local}@users.noreply.github.com"


def _identity(_args: argparse.Namespace) -> int:
    name, email = identity(os.environ)
    for key, value in (("user.name", name), ("user.email", email)):
        runner.run(["git", "config", key, value], timeout=30)
    print(f"release commits are authored by {name} <{email}>")
    return 0


def _registry_login(args: argparse.Namespace) -> int:
    token = os.environ.get(args.token_env, "")
    if not token:
        raise InputError(f"{args.token_env}: empty (the registry token)")
    name, _ = identity(os.environ)
    from infra.tools.image.buildah import tls_flag  # plain HTTP only for a loopback registry

    # The token goes on stdin: the command line is in every error message, stdin in none.
    login = ["buildah", "login", tls_flag(args.registry), "--username", name, "--password-stdin"]
    runner.run([*login, args.registry], error=ImageError, stdin=token, timeout=120)
    print(f"logged in to {args.registry} as {name}")
    return 0


#: release.yml's actions.
DISPATCH_ACTIONS = ("promote", "promote-canary", "rollout", "rollback")


def dispatch_argv(env: Mapping[str, str]) -> list[str]:
    """The ``python -m infra release`` arguments for release.yml's inputs (ACTION, STACK, …)."""

    def need(name: str) -> str:
        value = env.get(name, "")
        if not value.strip():
            raise InputError(f"{name}: required for ACTION={env.get('ACTION')}")
        return value

    action, stack = env.get("ACTION", ""), need("STACK")
    if action not in DISPATCH_ACTIONS:
        raise InputError(f"ACTION: {action!r} is not one of {', '.join(DISPATCH_ACTIONS)}")
    force = env.get("FORCE", "false")
    if force not in ("true", "false"):
        raise InputError(f"FORCE: must be true or false, got {force!r}")
    if action == "rollout":
        prometheus = need("PROMETHEUS_URL")
        plan = ("--steps", need("STEPS"), "--interval", need("INTERVAL"), "--prometheus", prometheus)
        return ["rollout", "--stack", stack, *plan, "--apply", "--push"]
    reason = ("--reason", need("REASON"))
    if action == "rollback":
        to = ("--to", env["RELEASE_ID"]) if env.get("RELEASE_ID", "").strip() else ()
        return ["rollback", "--stack", stack, *reason, *to, "--push"]
    try:
        source = stacks.source_of(stack)
    except ReleaseError as exc:
        raise InputError(f"STACK: {exc}") from None
    argv = ["promote", "--from", source, "--to", stack, *reason, "--push"]
    if action == "promote-canary":
        weight = need("CANARY_WEIGHT")
        if not weight.isdigit():
            raise InputError(f"CANARY_WEIGHT: must be a whole percentage, got {weight!r}")
        argv += ["--canary", weight]
    if force == "true":
        argv.append("--force")
    return argv


def _dispatch(_args: argparse.Namespace) -> int:
    from infra.tools.release import cli as release_cli

    argv = dispatch_argv(os.environ)
    print("+ python -m infra release " + " ".join(argv), flush=True)
    return release_cli.main(argv)


def _path(args: argparse.Namespace) -> int:
    decision = path.decide(path.changed(args.root, args.base, args.head))
    print(f"ci path: {decision.path}: {decision.why}", file=sys.stderr)
    print(f"path={decision.path}")
    return 0


def _backend(_args: argparse.Namespace) -> int:
    found = backend.check(os.environ)
    login = f", logged in by {found.oidc_action} through OIDC" if found.oidc_action else ""
    print(f"state backend: {found.name}: {found.what}{login}")
    return 0


def _preview_access(args: argparse.Namespace) -> int:
    stack_file = args.root / f"Pulumi.{args.stack}.yaml"
    if not stack_file.is_file():
        raise InputError(f"--stack: no stack file {stack_file}")
    cfg = load_stack_file(stack_file)
    objects = preview_access(cfg.namespace, own_namespace=not cfg.existing_namespace)
    print(f"# The pulumi-preview account for stack {args.stack} (namespace {cfg.namespace}); docs/ci.md")
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line (the workflow tests parse every invocation with it)."""
    top = argparse.ArgumentParser(prog="python -m infra ci", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("plugins", help="pulumi plugin install the program's plugins at their pinned versions")
    p.add_argument("--print", dest="print_only", action="store_true", help="only print the commands")
    k = sub.add_parser("kubeconfig", help="write $ENV's kubeconfig to a 0600 file; KUBECONFIG to $GITHUB_ENV")
    k.add_argument("--env", required=True, metavar="NAME", help="the environment variable holding it")
    k.add_argument("--out", required=True, type=Path, help="where to write it")
    sub.add_parser("identity", help="git config user.name/email from GITHUB_ACTOR (release commits)")
    r = sub.add_parser("registry-login", help="buildah login to REGISTRY as GITHUB_ACTOR with $TOKEN_ENV")
    r.add_argument("--registry", required=True, metavar="HOST[:PORT]")
    r.add_argument("--token-env", required=True, metavar="NAME", help="the environment variable holding it")
    sub.add_parser("dispatch", help="run release.yml's release from its inputs (ACTION, STACK, REASON, …)")
    c = sub.add_parser("path", help="path=fast when only stack files and release history changed, else full")
    c.add_argument("--base", required=True, metavar="REF", help="the pull request's base, e.g. origin/main")
    c.add_argument("--head", default="HEAD", metavar="REF", help="the pull request's head (default: HEAD)")
    c.add_argument(
        "--root", type=Path, default=Path("."), help="the repository (default: the current folder)"
    )
    sub.add_parser(
        "backend", help="check PULUMI_BACKEND against the job's backend secrets (exit 2 naming one)"
    )
    a = sub.add_parser("preview-access", help="print a stack's preview account, RBAC and dry-run-only policy")
    a.add_argument("--stack", required=True, help="the stack whose Namespace the account previews")
    a.add_argument("--root", type=Path, default=Path("."), help="the project folder (default: .)")
    return top


def main(argv: list[str]) -> int:
    """Entry point for ``python -m infra ci``."""
    args = parser().parse_args(argv)
    commands = {
        "plugins": _plugins,
        "kubeconfig": _kubeconfig,
        "identity": _identity,
        "registry-login": _registry_login,
        "dispatch": _dispatch,
        "path": _path,
        "backend": _backend,
        "preview-access": _preview_access,
    }
    try:
        return commands[args.command](args)
    except (InputError, ConfigError) as exc:
        print(f"ci {args.command}: {exc}", file=sys.stderr)
        return 2
    except InfraError as exc:  # a tool failed; its message names the command, never a secret
        print(f"ci {args.command}: {exc}", file=sys.stderr)
        return 1

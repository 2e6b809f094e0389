"""`python -m infra <command> …`: the deployment half's one command line.

Each command lives in its own module exposing ``main(argv: list[str]) -> int``;
this file only dispatches, so commands can be added without touching each other.
"""

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "snapshot": ("infra.tools.snapshot.cli", "write a stack's Kubernetes objects as YAML"),
    "release": ("infra.tools.release.cli", "pin, canary, promote, roll back, history"),
    "image": ("infra.tools.image.cli", "build, push and pin the worker image"),
    "local": ("infra.tools.local.cli", "toolchain bootstrap and the embedded local cluster"),
    "ci": ("infra.tools.ci.cli", "workflow steps: the pinned Pulumi plugins, a job's kubeconfig"),
    "verify": (
        "infra.tools.verify.cli",
        "post-deploy smoke check of a stack: objects, health, a dry-run job",
    ),
    "demo": ("infra.tools.demo.cli", "the main job: local cluster, image, dev stack, worker, a sample job"),
}


def usage() -> str:
    """The command list, for `-h` and for unknown commands."""
    lines = ["usage: python -m infra <command> [args]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Dispatch to the named command's module."""
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage())
        return 0 if argv else 2
    entry = COMMANDS.get(argv[0])
    if entry is None:
        print(f"unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(entry[0])
    result: int = module.main(argv[1:])
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Build the pinned Go tools once, cache them by version, and report timings.

``bootstrap`` is idempotent: a tool whose cached binary exists is not rebuilt,
so a second run takes well under a second. Builds run one at a time with
``-p 2`` (the machine has two cores) and ``-trimpath``; each binary is written
to a temporary name and renamed into place, so an interrupted build never
leaves a half-written binary that a later run would trust.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from infra.errors import InfraError
from infra.local import layout
from infra.local.versions import (
    ETCD_DEBIAN_PACKAGE,
    GO_VERSION_MIN,
    PULUMI_VERSION,
    PYTHON_PULUMI_VERSION,
    TOOLS,
    UNAVAILABLE,
    GoTool,
    engine_older_than_sdk,
)

Log = Callable[[str], None]


class ToolchainError(InfraError):
    """A tool could not be built or is missing."""


@dataclass(frozen=True)
class BuildResult:
    """What happened to one tool during a bootstrap."""

    tool: GoTool
    path: Path
    seconds: float
    cached: bool


def tool_path(tool: GoTool) -> Path:
    """Where the cached binary of ``tool`` lives (it may not exist yet)."""
    return layout.toolchain_cache() / tool.cache_key / tool.name


def bin_dir() -> Path:
    """A folder of symlinks to every built tool: what ``local env`` puts first on PATH."""
    return layout.toolchain_cache() / "bin"


def go_binary() -> str:
    """The ``go`` command: from PATH, else the standard /usr/local/go install."""
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if found is None:
        raise ToolchainError("no `go` on PATH or at /usr/local/go/bin/go: install Go >= 1.25 first")
    return found


def check_go_version(go: str) -> str:
    """Return ``go version``'s output; raise if it is older than the modules need."""
    out = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.strip()
    match = re.search(r"go(\d+)\.(\d+)", out)
    if match is None or (int(match[1]), int(match[2])) < GO_VERSION_MIN:
        need = ".".join(map(str, GO_VERSION_MIN))
        raise ToolchainError(f"Go >= {need} is needed to build the toolchain, found: {out}")
    return out


def build_command(go: str, tool: GoTool, output: Path) -> list[str]:
    """The exact ``go build`` command line for ``tool``."""
    ldflags = " ".join(["-s", "-w", *(f"-X {setting}" for setting in tool.ldflags)])
    return [go, "build", "-p", "2", "-trimpath", "-ldflags", ldflags, "-o", str(output), tool.package]


def build_env() -> dict[str, str]:
    """The environment for ``go build``: committed go.sum only, two cores."""
    env = dict(os.environ)
    env.update(GOFLAGS="-buildvcs=false -mod=readonly", GOMAXPROCS="2", GOTOOLCHAIN="local")
    return env


def build(tool: GoTool, log: Log) -> BuildResult:
    """Build ``tool`` unless its cached binary exists; return where it is and how long it took."""
    target = tool_path(tool)
    if target.exists():
        return BuildResult(tool, target, 0.0, cached=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{tool.name}.partial")
    cmd = build_command(go_binary(), tool, partial)
    log(f"building {tool.name} {tool.version} ({tool.package})")
    started = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=layout.GOMOD_DIR / tool.module_dir, env=build_env(), capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ToolchainError(
            f"building {tool.name} failed after {seconds:.0f}s: {' '.join(cmd)}\n{proc.stderr.strip()}"
        )
    partial.rename(target)
    _record_timing(target.parent, tool.name, seconds)
    return BuildResult(tool, target, seconds, cached=False)


def _record_timing(folder: Path, name: str, seconds: float) -> None:
    times_file = folder / "build-seconds.json"
    times: dict[str, float] = json.loads(times_file.read_text()) if times_file.exists() else {}
    times[name] = round(seconds, 1)
    times_file.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")


def cold_timings() -> dict[str, float]:
    """The recorded cold build time of every cached tool, in seconds."""
    found: dict[str, float] = {}
    for tool in TOOLS:
        times_file = tool_path(tool).parent / "build-seconds.json"
        if times_file.exists():
            found.update({k: v for k, v in json.loads(times_file.read_text()).items() if k == tool.name})
    return found


def link_bin(results: Iterable[BuildResult]) -> Path:
    """Point ``bin_dir()/<name>`` at each built binary (replacing stale links)."""
    folder = bin_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for result in results:
        link = folder / result.tool.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(result.path)
    return folder


def etcd_binary() -> Path:
    """Debian's etcd (``etcd-server``, listed in deps/apt-local.txt)."""
    found = shutil.which("etcd")
    if found is None:
        raise ToolchainError(f"no `etcd` on PATH: install the Debian package {ETCD_DEBIAN_PACKAGE}")
    return Path(found)


def missing() -> list[str]:
    """Names of pinned tools that are not built yet."""
    return [tool.name for tool in TOOLS if not tool_path(tool).exists()]


def bootstrap(log: Log | None = None, only: Iterable[str] | None = None) -> list[BuildResult]:
    """Build every pinned tool that is not cached yet, one at a time, and link them into ``bin_dir()``."""
    say: Log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    say(check_go_version(go_binary()))
    wanted = set(only) if only is not None else None
    started = time.monotonic()
    results: list[BuildResult] = []
    for tool in TOOLS:
        if wanted is None or tool.name in wanted:
            result = build(tool, say)
            results.append(result)
            state = "cached" if result.cached else f"built in {result.seconds:.0f}s"
            say(f"{tool.name:<24} {tool.version:<10} {state}")
    link_bin(results)
    etcd_binary()
    built = sum(not r.cached for r in results)
    total = time.monotonic() - started
    say(f"toolchain ready in {total:.0f}s: {built} built, {len(results) - built} cached")
    for name, reason in UNAVAILABLE.items():
        say(f"{name:<24} NOT BUILT: {reason}")
    if engine_older_than_sdk():
        say(
            f"warning: pyproject pins pulumi=={PYTHON_PULUMI_VERSION}, newer than the engine "
            f"v{PULUMI_VERSION} (the newest the Go module proxy serves); pin pulumi=={PULUMI_VERSION}"
        )
    return results

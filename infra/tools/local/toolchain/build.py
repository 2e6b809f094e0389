"""Build the pinned Go tools once, cache them by version, and report timings.

``bootstrap`` is idempotent: a tool whose cached binary exists is not rebuilt,
so a second run takes well under a second. A tool of the pinned version that is
already installed the normal way (``pulumi`` and its Python language host on
``PATH``, the Kubernetes provider in ``~/.pulumi``) is used as it is and nothing
is built. Builds run one at a time with ``-p 2`` (the machine has two cores) and
``-trimpath``, printing a heartbeat every 30 s; each binary is written to a
temporary name and renamed into place, so an interrupted build never leaves a
half-written binary that a later run would trust.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from infra import runner
from infra.errors import ToolchainError
from infra.tools.local import layout
from infra.tools.local.toolchain import gosource, plugins
from infra.tools.local.toolchain.versions import (
    ETCD_DEBIAN_PACKAGE,
    GO_VERSION_MIN,
    PULUMI_VERSION,
    PYTHON_PULUMI_VERSION,
    TOOLS,
    GoTool,
    ProxyModule,
    engine_older_than_sdk,
)
from infra.tools.local.toolchain.versions import tool as pinned_tool

Log = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    """What happened to one tool during a bootstrap."""

    tool: GoTool
    path: Path
    seconds: float
    cached: bool
    found: Path | None = None  # a pinned binary installed the normal way, used instead of building


def tool_path(tool: GoTool) -> Path:
    """Where the cached binary of ``tool`` lives (it may not exist yet)."""
    return layout.toolchain_cache() / tool.cache_key / tool.name


def build_lock(tool: GoTool) -> Path:
    """The file whose lock one build of ``tool`` holds (beside the tools' folders, so a failed
    build leaves its own folder empty)."""
    return layout.toolchain_cache() / f".{tool.cache_key}.lock"


def addon_binary(name: str) -> str:
    """The built binary of an add-on (the ``addon=True`` tools that ``./dev test`` builds)."""
    binary = tool_path(pinned_tool(name))
    if not binary.exists():
        raise ToolchainError(f"{name} is not built: run deps/setup.d/45-addons.sh")
    return str(binary)


def ensure_built(name: str, log: Log | None = None) -> str:
    """The binary of pinned tool ``name``, built first if it is not cached (for a tool only one test
    uses: the build then overlaps the rest of the suite instead of delaying its start)."""
    say: Log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    return str(build(pinned_tool(name), say).path)


def bin_dir() -> Path:
    """A folder of symlinks to every built tool: what ``local env`` puts first on PATH."""
    return layout.toolchain_cache() / "bin"


def go_binary() -> str:
    """The ``go`` command: from PATH, else the standard /usr/local/go install."""
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if found is None:
        raise ToolchainError("no `go` on PATH or at /usr/local/go/bin/go: install Go >= 1.25 first")
    return found


def source_files(name: str, folder: str, pattern: str = "*.yaml") -> list[Path]:
    """Files of a proxy-built tool's own module (an add-on's CRDs, say), so they match its binary."""
    source = pinned_tool(name).source
    if not isinstance(source, ProxyModule):
        raise ToolchainError(f"{name} is not built from a proxy module")
    found = sorted((gosource.module_dir(source, go_binary()) / folder).glob(pattern))
    found = [f for f in found if f.name != "kustomization.yaml"]
    if not found:
        raise ToolchainError(f"no {pattern} under {folder} of {source.path}@{source.version}")
    return found


def check_go_version(go: str) -> str:
    """Return ``go version``'s output; raise if it is older than the modules need."""
    out = runner.run([go, "version"], error=ToolchainError, timeout=60).strip()
    match = re.search(r"go(\d+)\.(\d+)", out)
    if match is None or (int(match[1]), int(match[2])) < GO_VERSION_MIN:
        need = ".".join(map(str, GO_VERSION_MIN))
        raise ToolchainError(f"Go >= {need} is needed to build the toolchain, found: {out}")
    return out


def build_command(go: str, tool: GoTool, output: Path) -> list[str]:
    """The exact ``go build`` command line for ``tool``."""
    ldflags = " ".join(["-s", "-w", *(f"-X {setting}" for setting in tool.ldflags)])
    return [go, "build", "-p", "2", "-trimpath", "-ldflags", ldflags, "-o", str(output), tool.package]


def _reports_version(binary: str, tool: GoTool) -> bool:
    assert tool.version_args is not None
    try:
        out = runner.run([binary, *tool.version_args], error=ToolchainError, timeout=20)
    except ToolchainError:
        return False
    return out.strip() == f"v{tool.version}"


def found_on_path(tool: GoTool) -> Path | None:
    """``tool`` of exactly the pinned version installed elsewhere (never the toolchain's own links).

    Plugins are looked up in the user's ``PULUMI_HOME``; binaries with
    ``version_args`` on ``PATH``; companions (the language host's shim) must sit
    beside the binary, where the binary looks for them.
    """
    if tool.install == "plugin":
        return plugins.found_elsewhere(tool)
    if tool.version_args is None:
        return None
    own = {bin_dir().resolve(), layout.toolchain_cache().resolve()}
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or Path(folder).resolve() in own:
            continue
        candidate = Path(folder) / tool.name
        real = candidate.resolve()
        if not candidate.is_file() or not os.access(candidate, os.X_OK) or real.parent in own:
            continue
        if all((real.parent / extra).is_file() for extra in tool.companions) and _reports_version(
            str(candidate), tool
        ):
            return real
    return None


def _use_found(tool: GoTool, found: Path) -> BuildResult:
    """Point the cache entry at an installed binary (and its companions), so every caller finds it."""
    target = tool_path(tool)
    target.parent.mkdir(parents=True, exist_ok=True)
    for name, src in [(tool.name, found), *((x, found.parent / x) for x in tool.companions)]:
        _link(target.parent / name, src)
    return BuildResult(tool, target, 0.0, cached=True, found=found)


def build(tool: GoTool, log: Log) -> BuildResult:
    """Build ``tool`` unless it is cached or installed; return where it is and how long it took."""
    target = tool_path(tool)
    if target.exists():
        return BuildResult(tool, target, 0.0, cached=True)
    found = found_on_path(tool)
    if found is not None:
        log(f"{tool.name} {tool.version}: using the installed {found}")
        return _use_found(tool, found)
    target.parent.mkdir(parents=True, exist_ok=True)
    # One build of a tool at a time across processes (two test runs, a test and a set-up step):
    # a second waits, then finds it cached.
    with open(build_lock(tool), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return BuildResult(tool, target, 0.0, cached=True)
        return _build_locked(tool, target, log)


def _build_locked(tool: GoTool, target: Path, log: Log) -> BuildResult:
    scratch = target.parent / ".build"
    shutil.rmtree(scratch, ignore_errors=True)
    partial = target.with_name(f".{tool.name}.partial")
    go = go_binary()
    log(f"building {tool.name} {tool.version} ({tool.package})")
    started = time.monotonic()
    try:
        prepared = gosource.prepare(tool, go, scratch, log)
        cmd = build_command(go, tool, partial)
        gosource.run(cmd, prepared.cwd, gosource.go_env(prepared.mod_flag), f"building {tool.name}", log,
                     scratch / "build.log")  # fmt: skip
        for extra in tool.companions:
            shutil.copy2(prepared.cwd / extra, target.parent / extra)
            (target.parent / extra).chmod(0o755)
    except ToolchainError:
        partial.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)  # the error carries the output's last lines
        raise
    seconds = time.monotonic() - started
    partial.rename(target)
    shutil.rmtree(scratch, ignore_errors=True)
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
    """Point ``bin_dir()/<name>`` at each binary and its companions (replacing stale links).

    Plugins are not linked: the engine finds them in ``PULUMI_HOME`` (see :func:`install`).
    """
    folder = bin_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for result in results:
        if result.tool.install == "plugin":
            continue
        for name in (result.tool.name, *result.tool.companions):
            _link(folder / name, result.path.parent / name)
    return folder


def _link(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target``, replacing whatever was there."""
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def install_plugins(results: Iterable[BuildResult], log: Log) -> None:
    """Install every built plugin into the toolchain's ``PULUMI_HOME`` (once; skipped when there)."""
    for result in results:
        if result.tool.install == "plugin" and not plugins.installed(result.tool):
            where = plugins.install(result.tool, result.path, tool_path(pinned_tool("pulumi")))
            log(f"{result.tool.name:<26} installed as a plugin: {where}")


def etcd_binary() -> Path:
    """Debian's etcd (``etcd-server``, listed in deps/apt-local.txt)."""
    found = shutil.which("etcd")
    if found is None:
        raise ToolchainError(f"no `etcd` on PATH: install the Debian package {ETCD_DEBIAN_PACKAGE}")
    return Path(found)


def _selected(tool: GoTool, wanted: set[str] | None) -> bool:
    """Whether ``tool`` is one of ``wanted``; with no names, every tool but the add-ons."""
    return tool.name in wanted if wanted is not None else not tool.addon


def missing(names: Iterable[str] | None = None) -> list[str]:
    """Pinned tools (of ``names``; default all but the add-ons) not built, or not installed as plugins."""
    wanted = set(names) if names is not None else None
    return [
        t.name
        for t in TOOLS
        if _selected(t, wanted)
        and (not tool_path(t).exists() or (t.install == "plugin" and not plugins.installed(t)))
    ]


def bootstrap(log: Log | None = None, only: Iterable[str] | None = None) -> list[BuildResult]:
    """Build every pinned tool that is not cached yet, one at a time, and link them into ``bin_dir()``."""
    say: Log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    say(check_go_version(go_binary()))
    wanted = set(only) if only is not None else None
    if wanted is not None and any(pinned_tool(name).install == "plugin" for name in wanted):
        wanted.add("pulumi")  # plugins are installed with the CLI
    started = time.monotonic()
    results: list[BuildResult] = []
    for pinned in TOOLS:
        if _selected(pinned, wanted):
            result = build(pinned, say)
            results.append(result)
            state = "cached" if result.cached else f"built in {result.seconds:.0f}s"
            state = f"found {result.found}" if result.found else state
            say(f"{pinned.name:<26} {pinned.version:<10} {state}")
    link_bin(results)
    install_plugins(results, say)
    etcd_binary()
    built = sum(not r.cached for r in results)
    total = time.monotonic() - started
    say(f"toolchain ready in {total:.0f}s: {built} built, {len(results) - built} cached")
    if engine_older_than_sdk():
        say(
            f"warning: pyproject pins pulumi=={PYTHON_PULUMI_VERSION}, newer than the engine "
            f"v{PULUMI_VERSION} (the newest the Go module proxy serves); pin pulumi=={PULUMI_VERSION}"
        )
    return results

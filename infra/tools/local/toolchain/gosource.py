"""Turn a :data:`~infra.tools.local.toolchain.versions.Source` into a folder ``go build`` can run in.

* a committed wrapper module is built where it is, read-only (its go.sum is complete);
* vendored third-party source is copied to a scratch folder first (the shared copy stays untouched);
* a proxy module is downloaded, copied out of the read-only module cache, its out-of-zip
  ``replace`` lines dropped and its embedded files generated, then built with ``-mod=mod``
  so the Go proxy and checksum database fill in the sums the edit needs.

Every command goes through :func:`run`, which prints a heartbeat with the elapsed time at
least every 30 s, so a long cold build never looks hung.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.errors import ToolchainError
from infra.tools.local import layout
from infra.tools.local.toolchain.versions import (
    ENV_THIRD_PARTY,
    GoTool,
    ProxyModule,
    VendoredSource,
    WrapperModule,
    third_party_dir,
)

Log = Callable[[str], None]
HEARTBEAT_SECONDS = 30.0


@dataclass(frozen=True)
class Prepared:
    """Where to run ``go build`` for a tool, and the GOFLAGS module mode it needs."""

    cwd: Path
    mod_flag: str  # "-mod=readonly" or "-mod=mod"


def run(
    cmd: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    what: str,
    log: Log,
    log_file: Path,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> float:
    """Run ``cmd``, output to ``log_file``; log ``what`` and the elapsed time every ``heartbeat`` s.

    Returns the seconds it took; raises ToolchainError naming the command and the
    output's last lines when it fails.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_file.open("ab") as out:
        # Popen, not infra.runner: a build of many minutes logs to a file and reports progress
        # while it runs (the runner waits silently and keeps the output in memory).
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        while True:
            try:
                proc.wait(timeout=heartbeat)
                break
            except subprocess.TimeoutExpired:
                log(f"  ... still {what}: {time.monotonic() - started:.0f}s")
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").strip().splitlines()[-30:])
        raise ToolchainError(f"{what} failed after {seconds:.0f}s: {' '.join(cmd)}\n{tail}")
    return seconds


def _copy_writable(src: Path, dest: Path) -> None:
    """Copy a tree and make it writable (the Go module cache is read-only)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, symlinks=True)
    for path in [dest, *dest.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def _module_dir(go: str, module: ProxyModule, env: dict[str, str], scratch: Path, log: Log) -> Path:
    ref = f"{module.path}@{module.version}"
    listing = scratch / "download.json"
    run([go, "mod", "download", "-json", ref], scratch, env, f"downloading {ref}", log, listing)
    info = json.loads(listing.read_text())
    if "Dir" not in info:
        raise ToolchainError(f"go mod download {ref}: {info.get('Error', 'no Dir in its answer')}")
    return Path(info["Dir"])


def module_dir(module: ProxyModule, go: str) -> Path:
    """Where the Go module cache holds ``module`` (downloaded from the proxy first if need be)."""
    with tempfile.TemporaryDirectory(prefix="gomod-") as scratch:
        return _module_dir(go, module, go_env("-mod=mod"), Path(scratch), lambda _: None)


def prepare(tool: GoTool, go: str, scratch: Path, log: Log) -> Prepared:
    """Make ``tool``'s source buildable and say where; ``scratch`` is this build's own folder."""
    source = tool.source
    if isinstance(source, WrapperModule):
        return Prepared(layout.GOMOD_DIR / source.folder, "-mod=readonly")
    src = scratch / "src"
    if isinstance(source, VendoredSource):
        vendored = third_party_dir() / source.folder
        if not (vendored / "go.mod").is_file():
            raise ToolchainError(
                f"{tool.name}: its source is not at {vendored} (set ${ENV_THIRD_PARTY} to the folder "
                "holding the shared third_party/ sources)"
            )
        _copy_writable(vendored, src)
        return Prepared(src, "-mod=readonly")
    scratch.mkdir(parents=True, exist_ok=True)
    modenv = go_env("-mod=mod")
    _copy_writable(_module_dir(go, source, modenv, scratch, log), src)
    for module in source.drop_replace:
        run([go, "mod", "edit", f"-dropreplace={module}"], src, modenv, f"editing go.mod of {tool.name}",
            log, scratch / "prepare.log")  # fmt: skip
    for file, keep in source.keep_imports:
        trim_blank_imports(src / file, keep)
    if source.generate is not None:
        run([go, "run", "generate.go"], src / source.generate, {**modenv, "VERSION": tool.version},
            f"generating the embedded files of {tool.name}", log, scratch / "prepare.log")  # fmt: skip
    return Prepared(src, "-mod=mod")


_BLANK_IMPORT = re.compile(r'^\s*_ "([^"]+)"[^\n]*\n', re.MULTILINE)


def trim_blank_imports(path: Path, keep: tuple[str, ...]) -> list[str]:
    """Drop the blank imports of ``path`` not in ``keep``; return the dropped paths.

    Fails if one of ``keep`` is not imported there (a new version moved it).
    """
    text = path.read_text()
    found = _BLANK_IMPORT.findall(text)
    missing = sorted(set(keep) - set(found))
    if missing:
        raise ToolchainError(f"{path}: no blank import of {', '.join(missing)} to keep")
    path.write_text(_BLANK_IMPORT.sub(lambda m: m[0] if m[1] in keep else "", text))
    return [imp for imp in found if imp not in keep]


def go_env(mod_flag: str) -> dict[str, str]:
    """The environment for ``go``: the given module mode, two cores, the local Go only."""
    return {**os.environ, "GOFLAGS": f"-buildvcs=false {mod_flag}", "GOMAXPROCS": "2", "GOTOOLCHAIN": "local"}

"""Pulumi resource plugins as the engine expects them: installed under ``PULUMI_HOME``.

The engine finds ``pulumi-resource-<name>`` of the exact version the Python SDK asks
for in ``$PULUMI_HOME/plugins/resource-<name>-v<version>/``. A binary only on ``PATH``
works too, but the engine then warns on every run (and about a version it cannot
check), so the toolchain installs the built provider with ``pulumi plugin install
--file`` instead. A user who installed Pulumi the normal way already has the plugin in
``~/.pulumi``; :func:`found_elsewhere` finds it there, and nothing is built.
"""

from __future__ import annotations

import os
from pathlib import Path

from infra import runner
from infra.errors import ToolchainError
from infra.tools.local import layout
from infra.tools.local.toolchain.versions import GoTool


def kind_and_name(tool: GoTool) -> tuple[str, str]:
    """``("resource", "kubernetes")`` for ``pulumi-resource-kubernetes``."""
    prefix, kind, name = tool.name.split("-", 2)
    if prefix != "pulumi" or kind not in {"resource", "language", "converter", "analyzer"}:
        raise ValueError(f"{tool.name} is not a Pulumi plugin binary name")
    return kind, name


def plugin_binary(tool: GoTool, home: Path) -> Path:
    """Where the engine looks for ``tool`` under ``home`` (a ``PULUMI_HOME``)."""
    kind, name = kind_and_name(tool)
    return home / "plugins" / f"{kind}-{name}-v{tool.version}" / tool.name


def installed(tool: GoTool, home: Path | None = None) -> bool:
    """True when the engine with ``PULUMI_HOME=home`` (default: the toolchain's) has the plugin."""
    return plugin_binary(tool, home or layout.pulumi_home()).is_file()


def found_elsewhere(tool: GoTool) -> Path | None:
    """The plugin of the pinned version in the user's own ``PULUMI_HOME`` (or ``~/.pulumi``)."""
    ours = layout.pulumi_home().resolve()
    for home in (os.environ.get("PULUMI_HOME"), str(Path.home() / ".pulumi")):
        if home and Path(home).resolve() != ours:
            binary = plugin_binary(tool, Path(home))
            if binary.is_file() and os.access(binary, os.X_OK):
                return binary
    return None


def install(tool: GoTool, binary: Path, pulumi: Path) -> Path:
    """``pulumi plugin install <kind> <name> <version> --file <binary>`` into the toolchain's home."""
    kind, name = kind_and_name(tool)
    home = layout.pulumi_home()
    home.mkdir(parents=True, exist_ok=True)
    cmd = [str(pulumi), "plugin", "install", kind, name, tool.version, "--file", str(binary)]
    env = {**os.environ, "PULUMI_HOME": str(home), "PULUMI_SKIP_UPDATE_CHECK": "true"}
    runner.run(cmd, error=ToolchainError, env=env)
    if not installed(tool, home):
        raise ToolchainError(f"{' '.join(cmd)} installed nothing at {plugin_binary(tool, home)}")
    return plugin_binary(tool, home)

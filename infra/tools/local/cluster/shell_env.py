"""The environment that points plain ``pulumi`` and ``kubectl`` at the local cluster.

``python -m infra local env`` prints it as shell exports, so
``eval "$(python -m infra local env)"`` is all a shell needs; tests and the
CLI wrappers use :func:`variables` directly.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from infra.config.model import LOCAL_DEV_PASSPHRASE
from infra.tools.local import layout
from infra.tools.local.layout import StateDir
from infra.tools.local.toolchain.build import bin_dir


def variables(
    state: StateDir | None = None, path: str | None = None, backend: Path | None = None
) -> dict[str, str]:
    """The variables to export, with ``PATH`` = built binaries first, then ``path`` (default: $PATH)."""
    st = state or StateDir.default()
    base_path = path if path is not None else os.environ.get("PATH", "")
    return {
        "PATH": f"{bin_dir()}:{base_path}" if base_path else str(bin_dir()),
        "KUBECONFIG": str(st.kubeconfig),
        "PULUMI_BACKEND_URL": f"file://{backend or st.pulumi_backend}",
        "PULUMI_CONFIG_PASSPHRASE": LOCAL_DEV_PASSPHRASE,
        "PULUMI_HOME": str(layout.pulumi_home()),
        # The engine must use the plugins installed from local builds, never download one,
        # and must not phone home for update checks.
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }


def exports(state: StateDir | None = None) -> str:
    """``export NAME=value`` lines, shell-quoted."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in variables(state).items())

"""The manifest builders, the policy rules and the output names load no Pulumi SDK.

Each runs in a fresh interpreter, so a module imported by an earlier test cannot hide an import.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import infra.manifests

ROOT = Path(__file__).resolve().parents[3]

SDK = ("pulumi", "pulumi_kubernetes")
MODULES = [
    *(m.name for m in pkgutil.walk_packages(infra.manifests.__path__, "infra.manifests.") if not m.ispkg),
    "infra.components.outputs",
    "policy.rules",
]


def loaded_sdk(module: str) -> list[str]:
    """The SDK packages in ``sys.modules`` after a fresh interpreter imports ``module``."""
    code = f"import json, sys, {module}; print(json.dumps([m for m in {SDK!r} if m in sys.modules]))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    found: list[str] = json.loads(done.stdout)
    return found


def test_every_manifest_module_is_listed() -> None:
    assert {"infra.manifests.common", "infra.manifests.pod", "infra.manifests.scaling.canary"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_loads_no_pulumi_sdk(module: str) -> None:
    assert loaded_sdk(module) == []


def test_the_check_notices_the_sdk() -> None:
    # The components do load it: the check is not vacuous.
    assert loaded_sdk("infra.components.declare") == list(SDK)

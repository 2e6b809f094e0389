"""The deployment half's layers import only downwards: tools → program → components → manifests → config.

Read from the source (every ``import`` statement, at any depth), so a lazy import inside a function
counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: For each layer of the program, the packages it must never import.
FORBIDDEN = {
    "infra/config": ("infra.tools", "infra.components", "infra.manifests"),
    "infra/manifests": ("infra.tools", "infra.components"),
    "infra/components": ("infra.tools",),
    "policy": ("infra.tools", "infra.components"),
    # The producer client is a wheel of its own: nothing of the worker or the deployment.
    "mobius_preview_client": ("worker", "infra", "policy", "tests"),
}


def imported(path: Path) -> set[str]:
    """Every module name an ``import`` or ``from … import`` in the file names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_imported_sees_lazy_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "def f():\n    from infra.tools.release import cli\n    import infra.components.stack\n"
    )
    assert {"infra.tools.release", "infra.tools.release.cli", "infra.components.stack"} <= imported(source)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    files = [*(ROOT / layer).rglob("*.py")] + ([ROOT / "__main__.py"] if layer == "infra/components" else [])
    assert files, layer
    wrong = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in sorted(imported(path))
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer])
    ]
    assert not wrong, "imports above the layer:\n" + "\n".join(wrong)

"""The CPython versions the project supports, read from ``requires-python`` (declared once there),
and where this machine has each.

``./dev test`` runs the interpreter-sensitive suites on every supported version besides the
``.venv``'s, and ``./dev test --python 3.13`` the whole suite but the end-to-end tests on one
(:data:`PORTABLE_SUITES`). Interpreters come from ``pyenv`` (``$(pyenv root)/versions/3.13.*``) or
``python3.13`` on ``PATH``; none is downloaded.

``python -m infra.tools.local.pythons supported`` prints the versions, one per line;
``… interpreter 3.13`` the path of that interpreter (exit 2 when there is none).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

from infra import runner
from infra.tools.local.layout import REPO_ROOT

#: The tests whose behaviour depends on the interpreter (the contract's JSON and base64 rules, the
#: job API, the producer client, the config model, the program under mocks), run on every
#: supported version by ``./dev test``. The API tests come first: the contract tests import them.
PORTABLE_SUITES = (
    "tests/worker/api",
    "tests/worker/contract",
    "tests/worker/test_client.py",
    "tests/infra/config",
    "tests/infra/manifests",
    "tests/infra/components",
    "tests/infra/test_program_variants.py",
)
_BOUND = re.compile(r"\s*(>=|<)\s*3\.(\d+)\s*")


def supported(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """``["3.11", "3.12", "3.13"]`` for ``requires-python = ">=3.11,<3.14"`` (the only form accepted)."""
    spec = tomllib.loads(pyproject.read_text())["project"]["requires-python"]
    bounds: dict[str, str] = {}
    for part in spec.split(","):
        if m := _BOUND.fullmatch(part):
            bounds[m[1]] = m[2]
    if set(bounds) != {">=", "<"} or len(spec.split(",")) != 2:
        raise ValueError(f'requires-python must be ">=3.A,<3.B", not {spec!r}')
    return [f"3.{minor}" for minor in range(int(bounds[">="]), int(bounds["<"]))]


def interpreter(version: str) -> Path | None:
    """This machine's CPython ``version`` (``"3.13"``): pyenv's newest patch release, else ``PATH``."""
    root = _pyenv_root()
    if root is not None:
        found = sorted(
            (root / "versions").glob(f"{version}.*/bin/python{version}"),
            key=lambda p: [int(x) for x in re.findall(r"\d+", p.parents[1].name)],
        )
        if found:
            return found[-1]
    on_path = shutil.which(f"python{version}")
    return Path(on_path) if on_path else None


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    if shutil.which("pyenv"):
        out = runner.run(["pyenv", "root"], check=False, timeout=30).strip()
        if out:
            return Path(out)
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def main(argv: list[str]) -> int:
    if argv == ["supported"]:
        print("\n".join(supported()))
        return 0
    if len(argv) == 2 and argv[0] == "interpreter":
        if argv[1] not in supported():
            print(
                f"Python {argv[1]} is not one requires-python accepts: {', '.join(supported())}",
                file=sys.stderr,
            )
            return 2
        path = interpreter(argv[1])
        if path is None:
            print(f"no Python {argv[1]} on this machine (pyenv or python{argv[1]} on PATH)", file=sys.stderr)
            return 2
        print(path)
        return 0
    if argv == ["portable"]:
        print("\n".join(PORTABLE_SUITES))
        return 0
    print(
        "usage: python -m infra.tools.local.pythons {supported | portable | interpreter VERSION}",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The supported Pythons come from ``requires-python`` alone, and this machine has each of them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.tools.local import pythons

REPO = Path(__file__).resolve().parents[4]


def pyproject(tmp_path: Path, spec: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(f'[project]\nname = "x"\nrequires-python = "{spec}"\n')
    return path


def test_the_versions_are_the_minor_releases_requires_python_accepts(tmp_path: Path) -> None:
    assert pythons.supported(pyproject(tmp_path, ">=3.11,<3.14")) == ["3.11", "3.12", "3.13"]
    assert pythons.supported(pyproject(tmp_path, ">= 3.12, < 3.13")) == ["3.12"]


@pytest.mark.parametrize("spec", ["==3.11.*", ">=3.11", ">=3.11,<3.14,!=3.12.0", "<3.14"])
def test_any_other_form_of_requires_python_is_refused_by_name(tmp_path: Path, spec: str) -> None:
    with pytest.raises(ValueError, match="requires-python"):
        pythons.supported(pyproject(tmp_path, spec))


@pytest.mark.parametrize("version", pythons.supported())
def test_this_machine_has_every_supported_python(version: str) -> None:
    path = pythons.interpreter(version)
    assert path is not None, f"no Python {version}: install it with pyenv (the README's prerequisites)"
    out = subprocess.run(
        [path, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    assert out.stdout.strip() == str(tuple(int(x) for x in version.split(".")))


def test_the_portable_suites_exist() -> None:
    assert all((REPO / suite).exists() for suite in pythons.PORTABLE_SUITES)


def test_an_unsupported_version_is_exit_2_naming_the_range() -> None:
    proc = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-m", "infra.tools.local.pythons", "interpreter", "3.9"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "3.9 is not one requires-python accepts: 3.11, 3.12, 3.13" in proc.stderr

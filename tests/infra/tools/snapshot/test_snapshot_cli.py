"""`python -m infra snapshot`: one YAML file per object, same objects as the program declares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from infra.tools.snapshot.cli import main
from infra.tools.snapshot.harness import ROOT, ProgramRun


def test_render_writes_the_programs_objects(stack_runs: dict[str, ProgramRun], tmp_path: Path) -> None:
    assert main(["--stack", "staging", "--out", str(tmp_path)]) == 0
    files = sorted(tmp_path.glob("*.yaml"))
    docs = [yaml.safe_load(f.read_text()) for f in files]
    assert [d["kind"] for d in docs][:3] == ["Namespace", "ServiceAccount", "ConfigMap"]
    expected = {(o["kind"], o["metadata"]["name"]) for o in stack_runs["staging"].objects()}
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == expected
    assert files[0].name == "01-namespace-preview-staging.yaml"


def test_render_is_deterministic_and_replaces_old_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "99-stale-object.yaml").write_text("kind: Stale\n")
    main(["--stack", "prod", "--out", str(tmp_path / "a")])
    assert not (tmp_path / "a" / "99-stale-object.yaml").exists()
    main(["--stack", "prod", "--out", str(tmp_path / "a")])
    main(["--stack", "prod", "--out", str(tmp_path / "b")])
    a = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    b = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert a == b


def test_render_masks_secret_values(tmp_path: Path) -> None:
    assert main(["--stack", "dev", "--out", str(tmp_path)]) == 0
    (secret_file,) = tmp_path.glob("*-secret-*.yaml")
    secret = yaml.safe_load(secret_file.read_text())
    assert secret["stringData"] == {"REDIS_URL": "<secret>"}
    assert "mock-secret-value" not in "".join(p.read_text() for p in tmp_path.iterdir())


def test_render_cli_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra", "snapshot", "--stack", "qa", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "render: no stack file Pulumi.qa.yaml (stacks: dev, prod, staging)"

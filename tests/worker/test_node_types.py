"""The Node.js side of the contract: TypeScript types generated from the schema, and a typed producer.

The committed ``schemas/preview-job.d.ts`` must be what ``json-schema-to-typescript`` makes of
the schema today, and ``docs/examples/node-producer.ts`` must compile against it with ``tsc``;
a producer that breaks the contract must not.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NODE = REPO / "tests" / "node"
TSC_FLAGS = ["--noEmit", "--strict", "--skipLibCheck", "--module", "nodenext",
             "--moduleResolution", "nodenext", "--target", "es2022"]  # fmt: skip


def tool(name: str) -> Path:
    path = NODE / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.fail(f"{name} is not installed: run `npm ci --prefix tests/node` (./dev setup does)")
    return path


def tsc(*files: Path) -> subprocess.CompletedProcess[str]:
    # tsc resolves `bullmq` from the compiled file's folders upwards; the sample lives in docs/,
    # so it is compiled through a link inside tests/node, where node_modules is.
    return subprocess.run([str(tool("tsc")), *TSC_FLAGS, *map(str, files)], cwd=NODE, capture_output=True,
                          text=True, timeout=180)  # fmt: skip


def test_the_committed_types_are_generated_from_the_schema(tmp_path: Path) -> None:
    tool("json2ts")
    out = tmp_path / "preview-job.d.ts"
    subprocess.run(["node", str(NODE / "gen-types.mjs"), str(out)], check=True, timeout=120)
    assert (REPO / "schemas" / "preview-job.d.ts").read_text() == out.read_text()
    assert "export interface PreviewJob" in out.read_text()


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    """A folder under tests/node (so bullmq resolves) mirroring docs/examples and schemas."""
    root = NODE / ".typecheck" / tmp_path.name
    for name in ("docs/examples", "schemas"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "schemas" / "preview-job.d.ts").write_text((REPO / "schemas" / "preview-job.d.ts").read_text())
    yield root
    shutil.rmtree(root)


def test_the_sample_producer_compiles(workspace: Path) -> None:
    sample = workspace / "docs" / "examples" / "node-producer.ts"
    sample.write_text((REPO / "docs" / "examples" / "node-producer.ts").read_text())
    done = tsc(sample)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_producer_breaking_the_contract_does_not_compile(workspace: Path) -> None:
    sample = workspace / "docs" / "examples" / "node-producer.ts"
    text = (REPO / "docs" / "examples" / "node-producer.ts").read_text()
    sample.write_text(text.replace('format: "webp"', 'format: "gif"', 1))
    done = tsc(sample)
    assert done.returncode != 0
    assert """Type '"gif"' is not assignable to type '"webp" | "png" | "jpeg"'""" in done.stdout

"""The npm package ``clients/node`` (``@mobius/preview-jobs``), used as a Node.js team would use it.

``npm pack`` builds it (its ``prepack`` generates the types, the defaults and the ajv validator from
``schemas/``); the tarball, not the source folder, is installed offline into a scratch project,
where one ``tsc --strict`` run compiles every example and counter-example of ``schemas/examples/``
and the sample producer, and the validator checks the same files at run time. What the types can
hold must be a compile error; what they cannot must be refused by the validator.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.servers import RedisServer, shared_redis_server  # noqa: F401 (registers `redis_server`)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PACKAGE = REPO / "clients" / "node"
NAME = "@mobius/preview-jobs"
#: The scratch project lives under tests/node so that bullmq and typescript resolve from its
#: node_modules (what a project depending on the package would have installed itself).
NODE = REPO / "tests" / "node"
EXAMPLES = REPO / "schemas" / "examples"
TSC_FLAGS = ["--noEmit", "--strict", "--skipLibCheck", "--module", "nodenext",
             "--moduleResolution", "nodenext", "--target", "es2022"]  # fmt: skip

#: Counter-examples the types refuse, with the compile error each must give.
TYPE_ERRORS = {
    "two-sources": "Type 'string' is not assignable to type 'undefined'",
    "empty-source": "Type '{}' is not assignable to type 'Source'",
    "no-outputs": "Source has 0 element(s) but target requires 1",
    "unknown-format": """Type '"tiff"' is not assignable to type '"webp" | "png" | "jpeg"'""",
}
#: Counter-examples only the runtime validator refuses, with the paths it must name.
RUNTIME_ONLY = {"duplicate-names": ["$.jobId", "$.outputs"]}
#: Counter-examples that are not JSON at all: JSON.parse refuses them.
NOT_JSON = {"truncated"}


def run(*cmd: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (PACKAGE / "node_modules" / "ajv").is_dir():
        pytest.fail("clients/node/node_modules is missing: `npm ci --prefix clients/node` (./dev setup does)")
    out = tmp_path_factory.mktemp("pack")
    done = run("npm", "pack", "--json", "--pack-destination", str(out), cwd=PACKAGE)
    assert done.returncode == 0, done.stderr[-3000:]
    packed = json.loads(done.stdout[done.stdout.index("[") :])[0]
    files = {f["path"] for f in packed["files"]}
    assert {"package.json", "dist/index.js", "dist/index.d.ts", "dist/generated/validate-job.js",
            "openapi.json", "preview-job.schema.json"} <= files  # fmt: skip
    assert not {f for f in files if f.startswith(("src/", "scripts/", "node_modules/"))}
    return out / packed["filename"]


@pytest.fixture(scope="module")
def scratch(tarball: Path) -> Iterator[Path]:
    """A fresh project that installed only the tarball (offline: the package has no dependencies)."""
    root = NODE / ".typecheck" / f"package-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    (root / "package.json").write_text(json.dumps({"name": "scratch", "private": True, "type": "module"}))
    try:
        done = run("npm", "install", "--offline", "--no-audit", "--no-fund", "--legacy-peer-deps",
                   str(tarball), cwd=root)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert (root / "node_modules" / NAME / "dist" / "index.d.ts").is_file()
        yield root
    finally:
        shutil.rmtree(root)


def typed_file(folder: Path, stem: str, payload: str) -> Path:
    path = folder / f"{stem}.ts"
    header = f'import type {{ PreviewJob }} from "{NAME}";\n'
    path.write_text(f"{header}export const job: PreviewJob = {payload};\n")
    return path


def diagnostics(output: str) -> dict[str, str]:
    """tsc's errors by file name (each error with its indented continuation lines)."""
    found: dict[str, str] = {}
    current = None
    for line in output.splitlines():
        head = re.match(r"(?:.*/)?([^/(]+\.ts)\(\d+,\d+\): error ", line)
        if head:
            current = head.group(1)
        if current is not None:
            found[current] = found.get(current, "") + line + "\n"
    return found


def test_every_counter_example_is_classified() -> None:
    stems = {p.stem for p in (EXAMPLES / "invalid").glob("*.json")}
    assert stems == set(TYPE_ERRORS) | set(RUNTIME_ONLY) | NOT_JSON


def test_types_refuse_what_they_can_and_the_validator_the_rest(scratch: Path) -> None:
    folder = scratch / "checks"
    folder.mkdir()
    valid = [typed_file(folder, f"valid-{p.stem}", p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    invalid = {
        stem: typed_file(folder, f"invalid-{stem}", (EXAMPLES / "invalid" / f"{stem}.json").read_text())
        for stem in [*TYPE_ERRORS, *RUNTIME_ONLY]
    }
    producer = folder / "node-producer.ts"
    producer.write_text((REPO / "docs" / "examples" / "node-producer.ts").read_text())
    documents = folder / "documents.ts"
    documents.write_text(
        f'import type {{ ApiAnswers, JobResult, JobStatus }} from "{NAME}";\n'
        'export const state: JobStatus["state"] = "completed";\n'
        'type Status = ApiAnswers["GET /api/preview/job/{job_id}/status"];\n'
        'export const answered: Status[200]["state"] | Status[404]["error"] = "failed";\n'
        'export const result: JobResult = { outcome: "dryrun", renditions: 0 };\n'
        'export const wrong: JobStatus["state"] = "unknown";\n'  # not a state the API reports
    )
    tsc = NODE / "node_modules" / ".bin" / "tsc"
    done = run(str(tsc), *TSC_FLAGS, *map(str, [*valid, *invalid.values(), producer, documents]), cwd=folder)
    errors = diagnostics(done.stdout)
    assert set(errors) == {f"invalid-{s}.ts" for s in TYPE_ERRORS} | {"documents.ts"}, done.stdout
    for stem, expected in TYPE_ERRORS.items():
        assert expected in errors[f"invalid-{stem}.ts"], errors[f"invalid-{stem}.ts"]
    assert """Type '"unknown"' is not assignable""" in errors["documents.ts"]
    assert errors["documents.ts"].count("error TS") == 1

    files = sorted(EXAMPLES.glob("*.json")) + sorted((EXAMPLES / "invalid").glob("*.json"))
    verdicts = runtime_check(scratch, files)
    for path in files:
        got = verdicts[path.name]
        if path.parent == EXAMPLES:
            assert got == [], (path.name, got)
        elif path.stem in NOT_JSON:
            assert got == "not JSON"
        else:
            assert got, f"{path.name}: the validator accepted a counter-example"
    for stem, paths in RUNTIME_ONLY.items():
        assert [v["path"] for v in verdicts[f"{stem}.json"]] == paths
        assert {"path": "$.outputs", "message": "must not have two items with the same name"} in verdicts[
            f"{stem}.json"
        ]


def runtime_check(scratch: Path, files: list[Path]) -> dict[str, object]:
    shutil.copy(HERE / "check.mjs", scratch)  # copied: node resolves the package from the script's folder
    done = run("node", "check.mjs", *map(str, files), cwd=scratch, timeout=60)
    assert done.returncode == 0, done.stderr
    verdicts: dict[str, object] = json.loads(done.stdout)
    return verdicts


def test_add_preview_job_sets_the_worker_retry_policy(scratch: Path, redis_server: RedisServer) -> None:
    shutil.copy(HERE / "add.mjs", scratch)
    queue = f"npm-{uuid.uuid4().hex[:8]}"
    done = run("node", "add.mjs", redis_server.url, queue, cwd=scratch, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer == {
        "id": "npm-1",
        "name": "preview",
        "queue": "preview-jobs",
        "refused": [{"path": "$.outputs", "message": "must not have two items with the same name"}],
    }
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        opts = json.loads(client.hget(f"bull:{queue}:npm-1", "opts") or "{}")
        assert client.exists(f"bull:{queue}:npm-2") == 0  # refused before anything reached Redis
    finally:
        client.close()
    backoff = {"type": "exponential", "delay": 1000}
    assert (opts["attempts"], opts["backoff"], opts["priority"]) == (3, backoff, 4)

"""The producer client as a team outside this repository gets it: the wheel built from
``clients/python/``, installed in a fresh venv on each supported Python with nothing else from the
repository, enqueues against a real Redis; the real worker (``python -m worker run``) completes the
jobs; the installed client reads the results, sync and async, woken by BullMQ's events.

One wheel build per session; each venv is ``uv venv`` plus ``uv pip install`` of the wheel (its
dependencies come from uv's cache or PyPI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import worker_media as media
from worker_kit import b64

from infra.tools.local import pythons

REPO = Path(__file__).resolve().parents[2]
PRODUCER = Path(__file__).with_name("wheel_producer.py")
JOB = {"outputs": [{"name": "thumb", "format": "webp", "width": 32, "height": 32}]}
#: What shows that ``wait`` is event-driven, whatever the machine's load: in 1.5 s on a job nobody
#: runs, a wait that polled every 0.2 s sent 2 commands (state, job) per poll, 15 or more; reading
#: the event stream sends the cursor, one status and one blocking XREAD.
IDLE_WAIT_MAX_COMMANDS = 5
#: How long after the worker finished a job ``wait`` may return: a few ms when the machine is idle;
#: generous, since a loaded 2-core machine delays any process (the commands above are the proof).
PROMPT_MS = 1000


def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed; ./dev installs it")
    return found


def run(*argv: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv}: {done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="session")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("client-wheel")
    run(uv(), "build", "--wheel", "--out-dir", str(out), str(REPO / "clients" / "python"), cwd=REPO)
    (wheel,) = out.glob("mobius_preview_client-*.whl")
    return wheel


@pytest.fixture(scope="session", params=pythons.supported())
def fresh_venv(
    request: pytest.FixtureRequest, client_wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A venv of one supported Python holding the wheel and its dependencies, nothing else."""
    interpreter = pythons.interpreter(request.param)
    if interpreter is None:
        pytest.fail(f"no CPython {request.param} here (pyenv or PATH); see docs/toolchain.md")
    tmp_path = tmp_path_factory.mktemp(f"venv-{request.param}")
    venv = tmp_path / "venv"
    run(uv(), "venv", "--quiet", "--python", str(interpreter), str(venv), cwd=tmp_path)
    python = venv / "bin" / "python"
    run(uv(), "pip", "install", "--quiet", "--python", str(python), str(client_wheel), cwd=tmp_path)
    yield python


def test_the_wheel_holds_the_client_and_the_schema_and_nothing_of_the_worker(client_wheel: Path) -> None:
    names = zipfile.ZipFile(client_wheel).namelist()
    packaged = {n.split("/")[0] for n in names}
    assert packaged == {"mobius_preview_client", client_wheel.name.split("-py3")[0] + ".dist-info"}
    schema = zipfile.ZipFile(client_wheel).read("mobius_preview_client/preview-job.schema.json")
    assert schema == (REPO / "schemas" / "preview-job.schema.json").read_bytes()  # the one schema, as is
    names_py = zipfile.ZipFile(client_wheel).read("mobius_preview_client/names.py")
    assert names_py == (REPO / "mobius_preview_client" / "names.py").read_bytes()
    assert "mobius_preview_client/py.typed" in names  # a type checker reads the job model
    meta = zipfile.ZipFile(client_wheel).read(f"{client_wheel.name.split('-py3')[0]}.dist-info/METADATA")
    root = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    headers = meta.decode().split("\n\n", 1)[0].splitlines()
    # The same BullMQ as the worker (one wire format), and the Pythons this test installs it on.
    (claimed,) = [h.removeprefix("Requires-Python: ") for h in headers if h.startswith("Requires-Python: ")]
    assert set(claimed.split(",")) == set(root["requires-python"].split(","))
    (bullmq,) = [d for d in root["dependencies"] if d.startswith("bullmq")]
    assert f"Requires-Dist: {bullmq}" in headers
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_an_installed_client_enqueues_and_reads_what_the_real_worker_did(
    fresh_venv: Path, spawn_worker: Any, worker_env: dict[str, str], tmp_path: Path
) -> None:
    spawn_worker()
    queue = worker_env["PREVIEW_QUEUE_NAME"]
    image = b64(media.jpeg(64, 48))
    jobs = [
        {**JOB, "jobId": f"wheel-{i}-{uuid.uuid4().hex[:6]}", "source": {"inline": image}} for i in range(3)
    ]
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "redis_url": worker_env["REDIS_URL"],
                "queue": queue,
                "idle_queue": f"{queue}-idle",
                "jobs": jobs,
            }
        )
    )
    outside = tmp_path / "producer"  # no repository on sys.path: -I, and a folder of its own
    outside.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(outside)}
    done = subprocess.run(
        [str(fresh_venv), "-I", str(PRODUCER), str(spec)],
        cwd=outside, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)

    assert seen["package"].startswith(str(fresh_venv.parents[1])), seen["package"]  # the installed one
    assert seen["worker_importable"] is False
    rendered = {"outcome": "completed", "renditions": 1}
    assert seen["sync"]["created"] == [True, False]  # the same jobId twice is one job
    for how in (seen["sync"], seen["async"]["done"]):
        assert (how["state"], how["result"]) == ("completed", rendered)
        assert how["late_ms"] < PROMPT_MS, how  # woken by the job's event
    idle = seen["async"]
    assert idle["timed_out"] and "is still waiting after 1.5s" in idle["timed_out"]
    assert idle["idle_waited"] >= 1.5
    assert "XREAD" in idle["idle_commands"], idle["idle_commands"]
    assert len(idle["idle_commands"]) <= IDLE_WAIT_MAX_COMMANDS, idle["idle_commands"]


def test_the_installed_validator_checks_payload_files(fresh_venv: Path, tmp_path: Path) -> None:
    examples = REPO / "schemas" / "examples"
    found = subprocess.run(
        [str(fresh_venv), "-I", "-m", "mobius_preview_client", "validate",
         str(examples / "minimal.json"), str(examples / "invalid" / "two-sources.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert found.returncode == 1, found.stderr
    invalid = examples / "invalid" / "two-sources.json"
    expected = invalid.with_suffix(".expected").read_text().splitlines()
    assert found.stdout.splitlines() == [f"{examples / 'minimal.json'}: ok"] + [
        f"{invalid}: {v}" for v in expected
    ]

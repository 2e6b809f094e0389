"""`./dev up` (``python -m infra demo``) as a user runs it: cluster, image, dev stack, worker, API, one job.

The whole demo runs, image build and ``pulumi up --stack dev`` included, and it must
leave every tracked file as it was: its pin and release history live in its own
project copy under the demo's state folder.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from e2e_kit import port_open, run
from PIL import Image

from infra.tools.demo import cli as demo
from infra.tools.local import layout
from infra.tools.local.cluster import shell_env
from infra.tools.local.layout import REPO_ROOT, StateDir
from tests.doc_commands import group

RUN_BEFORE_SESSION_CLUSTER = True  # it starts its own cluster on the same ports (see conftest.py)
ARTIFACT = re.compile(r"^  (\w+): (\S+) \((\w+) (\d+)x(\d+), \d+ B\)$", re.M)


def tracked_changes() -> tuple[str, str]:
    """``git status --porcelain`` and ``git diff`` of the work tree: what a run must not change."""
    git = ["git", "-C", str(REPO_ROOT)]
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True)
    diff = subprocess.run([*git, "diff", "--binary"], capture_output=True, text=True, check=True)
    return status.stdout, diff.stdout


def test_demo_runs_a_preview_job_on_the_local_environment_then_stops(
    built_toolchain: None, tmp_path: Path
) -> None:
    environ = {
        **os.environ,
        layout.ENV_LOCAL_STATE: str(tmp_path / "cluster"),
        "MOBIUS_DEMO_ROOT": str(tmp_path / "demo"),
    }
    infra = [sys.executable, "-m", "infra"]
    before = tracked_changes()
    try:
        out = run([*infra, "demo"], environ, timeout=900)
        assert re.search(r"^==> pulumi up --stack dev on the local cluster\n(?:    .*\n)*    Resources:\n"
                         r"        \+ \d+ created\n", out, re.M), out  # fmt: skip
        pinned = (tmp_path / "demo" / "pinned-image").read_text().strip()
        assert re.fullmatch(r"127\.0\.0\.1:5000/mobius/preview-worker@sha256:[0-9a-f]{64}", pinned)
        assert f"image:        {pinned}" in out
        live = run(["kubectl", "-n", "preview-dev", "get", "deployment", "preview-worker-stable", "-o",
                    "jsonpath={.spec.template.spec.containers[0].image}"],
                   {**environ, **shell_env.variables(StateDir(tmp_path / "cluster"))})  # fmt: skip
        assert live == pinned  # the image this run built is what pulumi up deployed
        assert "deployments:  preview-dev/preview-worker-stable" in out
        assert re.search(r"^job demo-\d+ completed; artifacts in ", out, re.M), out
        artifacts = {m[1]: m for m in ARTIFACT.finditer(out)}
        assert set(artifacts) == {"thumb", "card"}, out
        for name, fmt, size in (("thumb", "WEBP", (320, 240)), ("card", "JPEG", (640, 360))):
            path = Path(artifacts[name][2])
            assert path.is_relative_to(tmp_path / "demo" / "data")
            with Image.open(path) as image:
                assert (image.format, image.size) == (fmt, size)
        # Everything is left running for a person to try, as the README's try-it block says.
        assert all(port_open(p) for p in (demo.REDIS_PORT, demo.API_PORT, demo.METRICS_PORT))
        (try_it,) = group("demo")
        for command in try_it.commands():
            # Only the demo's folder is this run's own (MOBIUS_DEMO_ROOT); the line runs otherwise as written.
            assert ".local/demo/" in command
            mine = command.replace(".local/demo/", f"{tmp_path / 'demo'}/")
            answer = json.loads(run(["bash", "-c", mine], environ))
            assert answer["queue"] == "preview-jobs" and answer["completed"] >= 1, answer
        # A second run (image kept) re-pins the same image and finds nothing to change.
        again = run([*infra, "demo", "--skip-image"], environ, timeout=300)
        assert f"image:        {pinned} (built by an earlier run)" in again
        assert re.search(r"^    Resources:\n        \d+ unchanged\n", again, re.M), again
    finally:
        stopped = run([*infra, "demo", "--down"], environ)
        run([*infra, "local", "down", "--purge"], environ)
    assert {"api: stopped", "worker: stopped", "redis: stopped"} <= set(stopped.splitlines())
    assert tracked_changes() == before  # trying the demo changes no tracked file
    assert not any(port_open(p) for p in (demo.REDIS_PORT, demo.API_PORT, demo.METRICS_PORT))

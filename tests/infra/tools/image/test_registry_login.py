"""``python -m infra ci registry-login`` (main.yml's image job) against the real loopback registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from infra.tools.image import registry_server

REPO = Path(__file__).resolve().parents[4]


def test_login_stores_the_token_for_the_registry_and_never_prints_it(
    local_registry: registry_server.Registry, tmp_path: Path
) -> None:
    auth = tmp_path / "auth.json"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "PYTHONPATH": str(REPO),
        "REGISTRY_AUTH_FILE": str(auth),
        "GITHUB_ACTOR": "release-bot",
        "TOKEN": "tok-hunter2",
    }
    argv = [sys.executable, "-m", "infra", "ci", "registry-login", "--registry", local_registry.host,
            "--token-env", "TOKEN"]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"logged in to {local_registry.host} as release-bot"
    assert "hunter2" not in done.stdout + done.stderr
    assert local_registry.host in json.loads(auth.read_text())["auths"]
    empty = subprocess.run([*argv[:-1], "NO_SUCH_VAR"], env=env, capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and "NO_SUCH_VAR: empty (the registry token)" in empty.stderr

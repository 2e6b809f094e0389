"""``python -m worker run`` as the benchmarks start it: one env recipe, one way to spawn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def worker_env(redis_url: str, queue: str, data_dir: str, **settings: Any) -> dict[str, str]:
    """This process's env without any PREVIEW_* of its own, the worker pointed at ``queue``, and
    ``settings`` as PREVIEW_* variables (``concurrency=50`` → ``PREVIEW_WORKER_CONCURRENCY=50``)."""
    from worker.settings import env_of

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_")}
    env.update({
        "REDIS_URL": redis_url,
        "PREVIEW_QUEUE_NAME": queue,
        "DATA_DIR": data_dir,
        "PREVIEW_METRICS_PORT": "0",
        "PREVIEW_API_AUTH": "off",
    })  # fmt: skip
    env.update({env_of(name): str(value) for name, value in settings.items()})
    return env


def spawn(
    env: dict[str, str], *, output: bool = False, command: str = "run", log: Path | None = None
) -> subprocess.Popen[str]:
    """Start one worker (or ``command="api"``, the job API); with ``output`` its log lines are
    readable on ``stdout`` (for the ready line); with ``log`` they go to that file."""
    argv = [sys.executable, "-m", "worker", command]
    if log is not None:
        with log.open("w") as sink:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(argv, env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, text=True)
    out = subprocess.PIPE if output else subprocess.DEVNULL
    err = subprocess.STDOUT if output else subprocess.DEVNULL
    return subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=err, text=True)

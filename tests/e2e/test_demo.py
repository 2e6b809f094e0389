"""`./dev up` (``python -m infra demo``) as a user runs it: cluster, dev stack, worker, API, one job.

The image step is left out here (``--skip-image``): it pins into the work tree's
``Pulumi.dev.yaml``, and ``tests/infra/image`` covers build, push and pin.
"""

import os
import re
import sys
from pathlib import Path

from e2e_kit import port_open, run
from PIL import Image

from infra import demo
from infra.local import layout

RUN_BEFORE_SESSION_CLUSTER = True  # it starts its own cluster on the same ports (see conftest.py)
ARTIFACT = re.compile(r"^  (\w+): (\S+) \((\w+) (\d+)x(\d+), \d+ B\)$", re.M)


def test_demo_runs_a_preview_job_on_the_local_environment_then_stops(
    built_toolchain: None, tmp_path: Path
) -> None:
    environ = {
        **os.environ,
        layout.ENV_LOCAL_STATE: str(tmp_path / "cluster"),
        "MOBIUS_DEMO_ROOT": str(tmp_path / "demo"),
    }
    infra = [sys.executable, "-m", "infra"]
    try:
        out = run([*infra, "demo", "--skip-image"], environ, timeout=300)
        assert "deployments:  preview-dev/preview-worker-stable" in out
        assert re.search(r"^job demo-\d+ completed; artifacts in ", out, re.M), out
        artifacts = {m[1]: m for m in ARTIFACT.finditer(out)}
        assert set(artifacts) == {"thumb", "card"}, out
        for name, fmt, size in (("thumb", "WEBP", (320, 240)), ("card", "JPEG", (640, 360))):
            path = Path(artifacts[name][2])
            assert path.is_relative_to(tmp_path / "demo" / "data")
            with Image.open(path) as image:
                assert (image.format, image.size) == (fmt, size)
        # Everything is left running for a person to try.
        assert all(port_open(p) for p in (demo.REDIS_PORT, demo.API_PORT, demo.METRICS_PORT))
    finally:
        stopped = run([*infra, "demo", "--down"], environ)
        run([*infra, "local", "down", "--purge"], environ)
    assert {"api: stopped", "worker: stopped", "redis: stopped"} <= set(stopped.splitlines())
    assert not any(port_open(p) for p in (demo.REDIS_PORT, demo.API_PORT, demo.METRICS_PORT))

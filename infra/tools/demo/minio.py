"""The demo's artifact store: MinIO on ``127.0.0.1:9000``, its credentials and its bucket.

The binary is the one ``deps/setup.d/40-minio.sh`` builds from MinIO's Go module (the artifact
tests run the same one); the demo runs the script when it is missing. The pods reach the store at
the host's veth address through the real node's relay, while MinIO itself listens on loopback
only; presigned URLs name ``127.0.0.1:9000``, where the host fetches them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

from infra import runner
from infra.errors import DemoError
from infra.tools.local import procs
from infra.tools.local.layout import REPO_ROOT

SETUP_SCRIPT = REPO_ROOT / "deps" / "setup.d" / "40-minio.sh"
PORT = 9000
CONSOLE_PORT = 19001  # MinIO opens its console port even with the browser off: keep it off 9001


def binary() -> Path:
    """The MinIO binary ``40-minio.sh`` builds, at the version pinned there (``MINIO_BINARY`` overrides)."""
    if override := os.environ.get("MINIO_BINARY"):
        return Path(override)
    found = re.search(r'^MINIO_VERSION="([^"]+)"$', SETUP_SCRIPT.read_text(), re.MULTILINE)
    if found is None:
        raise DemoError(f'no MINIO_VERSION="…" line in {SETUP_SCRIPT}')
    return Path.home() / ".cache" / "mobius-preview-worker" / f"minio-{found[1]}" / "minio"


def ensure_built() -> Path:
    """The binary, built by ``40-minio.sh`` first when missing (about 3 minutes cold)."""
    path = binary()
    if not os.access(path, os.X_OK):
        runner.run(["bash", str(SETUP_SCRIPT)], error=DemoError, timeout=3600, capture=False)
    return path


def credentials(root: Path) -> dict[str, str]:
    """The store's access key and secret: made once, kept in ``<root>/minio-credentials`` (0600).

    The pods get them as the stack's ``secretValues``; MinIO gets them as its root user (no
    narrower user: that needs MinIO's admin API, whose request bodies are encrypted).
    """
    path = root / "minio-credentials"
    if not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        made = {"accessKey": "demo-" + secrets.token_hex(6), "secretKey": secrets.token_urlsafe(24)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(made, handle)
    held: dict[str, str] = json.loads(path.read_text())
    return held


def proc(root: Path) -> procs.Proc:
    """``minio server`` on loopback, its data under ``<root>/minio``."""
    argv = (str(binary()), "server", str(root / "minio"), "--address", f"127.0.0.1:{PORT}",
            "--console-address", f"127.0.0.1:{CONSOLE_PORT}", "--quiet")  # fmt: skip
    return procs.Proc("minio", argv, root / "pids" / "minio.pid", root / "logs" / "minio.log")


def env(root: Path) -> dict[str, str]:
    """MinIO's environment: its root user, no browser, no update checks."""
    creds = credentials(root)
    return {
        **os.environ,
        "MINIO_ROOT_USER": creds["accessKey"],
        "MINIO_ROOT_PASSWORD": creds["secretKey"],
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
    }


def ensure_bucket(root: Path, bucket: str) -> None:
    """Create ``bucket`` unless it exists."""
    import boto3  # the worker's dependency; imported here to keep `infra` light
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    creds = credentials(root)
    client = boto3.session.Session().client(
        "s3", endpoint_url=f"http://127.0.0.1:{PORT}", region_name="us-east-1",
        aws_access_key_id=creds["accessKey"], aws_secret_access_key=creds["secretKey"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )  # fmt: skip
    try:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError:
            client.create_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as err:
        raise DemoError(f"cannot make the bucket {bucket} on MinIO at 127.0.0.1:{PORT}: {err}") from None

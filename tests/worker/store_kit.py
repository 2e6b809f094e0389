"""A real MinIO server on loopback for the artifact-store tests, and settings that point at it.

The binary is built by ``deps/setup.d/40-minio.sh`` (``go install`` of the pinned
module version, read from that script by :func:`infra.tools.demo.minio.binary`). Tests FAIL,
never skip, when it is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from infra.tools.demo import minio as demo_minio
from tests.servers import free_port
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def minio_binary() -> Path:
    """The MinIO binary 40-minio.sh builds (``MINIO_BINARY`` overrides); the demo runs the same one."""
    return demo_minio.binary()


class MinioServer:
    """``minio server`` on a free loopback port with its own random root credentials."""

    def __init__(self, workdir: Path) -> None:
        self.binary = minio_binary()
        if not os.access(self.binary, os.X_OK):
            pytest.fail(f"MinIO is not built at {self.binary}: run deps/setup.d/40-minio.sh (./dev test)")
        self.workdir = workdir
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.access_key = "mpw-" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(24)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "minio.log"

    def start(self, timeout: float = 60) -> None:
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        args = [
            str(self.binary),
            "server",
            str(self.workdir / "data"),
            "--address",
            f"127.0.0.1:{self.port}",
            "--console-address",
            f"127.0.0.1:{free_port()}",
            "--quiet",
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.endpoint}/minio/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"minio did not start (exit {self.proc.poll()}): {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the store vanishes mid-request, as a crashed node would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> Any:
        """An admin S3 client (root credentials), for setting up and inspecting buckets."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=5,
            ),
        )

    def new_bucket(self) -> str:
        name = f"pv-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        page = self.client().list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in page.get("Contents", []))

    def read_only_env(self, bucket: str, **extra: str) -> dict[str, str]:
        """Worker environment with temporary credentials (MinIO's STS AssumeRole) whose session
        policy lets them read ``bucket`` but not write it: every PutObject answers AccessDenied."""
        sts = boto3.session.Session().client(
            "sts",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"],
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
        role = "arn:minio:iam:::role/read-only"  # MinIO ignores the ARN of a root user's AssumeRole
        found = sts.assume_role(RoleArn=role, RoleSessionName="read-only", Policy=json.dumps(policy))
        creds = found["Credentials"]
        return {
            **self.env(bucket, **extra),
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }

    def env(self, bucket: str, **extra: str) -> dict[str, str]:
        """Worker environment selecting the s3 store on this server."""
        return {
            "PREVIEW_ARTIFACT_STORE": "s3",
            "PREVIEW_S3_BUCKET": bucket,
            "PREVIEW_S3_ENDPOINT": self.endpoint,
            "PREVIEW_S3_ADDRESSING_STYLE": "path",
            "PREVIEW_S3_TIMEOUT_SECONDS": "2",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            **extra,
        }


@pytest.fixture(scope="session")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """One MinIO for the session (tests use their own bucket)."""
    server = MinioServer(tmp_path_factory.mktemp("minio"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_minio(tmp_path: Path) -> Iterator[MinioServer]:
    """A MinIO this test may kill and restart (same port, same data)."""
    server = MinioServer(tmp_path / "own-minio")
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()


def s3_settings(
    monkeypatch: pytest.MonkeyPatch,
    worker_env: dict[str, str],
    server: MinioServer,
    bucket: str,
    **extra: str,
) -> Settings:
    """Settings from ``worker_env`` plus the s3 store on ``server`` (credentials via the environment)."""
    for key, value in {**worker_env, **server.env(bucket, **extra)}.items():
        monkeypatch.setenv(key, value)
    return Settings()

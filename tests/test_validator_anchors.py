"""Every regex used as a validator, in both halves, refuses a trailing newline.

Python's ``$`` also matches just before a final ``"\\n"``, so a ``^…$`` check with
``re.match`` (or a JSON Schema ``pattern``, which ``jsonschema`` applies with ``re.search``)
let ``"abc\\n"`` through. Validators now use ``fullmatch``, and schema patterns end ``(?!\\n)$``.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from infra.config.fields.durations import check_duration, duration_seconds
from infra.config.fields.identifiers import check_dns_label
from infra.config.fields.image_refs import validate_image_ref
from infra.config.fields.quantities import quantity
from infra.config.model import parse_config
from infra.errors import ConfigError, ReleaseError
from infra.tools.release.stackfile import stack_path
from mobius_preview_client.contract import validation
from policy.rules import check_images_pinned

IMAGE = "ghcr.io/mobius/preview-worker@sha256:" + "a" * 64
INLINE = base64.b64encode(b"\x89PNG").decode()
OUTPUT = {"name": "thumb", "format": "webp", "width": 8, "height": 8}
JOB: dict[str, Any] = {"source": {"inline": INLINE}, "outputs": [OUTPUT]}


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (validate_image_ref, IMAGE),
        (lambda v: check_duration(None, v), "10m"),
        (lambda v: check_dns_label(None, v), "preview"),
        (lambda v: quantity(v, "cpu"), "250m"),
        (lambda v: duration_seconds(v, allow_zero=False), "10m"),
    ],
    ids=["image", "duration", "namespace", "quantity", "rollout-duration"],
)
def test_infra_checks_accept_a_value_and_refuse_it_with_a_trailing_newline(check: Any, value: str) -> None:
    check(value)
    with pytest.raises(ValueError):
        check(value + "\n")


def test_a_stack_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    assert stack_path(tmp_path, "dev") == tmp_path / "Pulumi.dev.yaml"
    with pytest.raises(ReleaseError, match="is not a stack name"):
        stack_path(tmp_path, "dev\n")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("artifacts", "bucket", "previews\n"), ("worker", "s3Prefix", "previews/\n")],
)
def test_s3_names_with_a_trailing_newline_are_refused(section: str, key: str, value: str) -> None:
    # worker.s3Prefix is the stack key of the S3 key prefix (PREVIEW_S3_PREFIX; worker/tunables.py).
    keys = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "PREVIEW_API_TOKENS": "t"}
    raw: dict[str, Any] = {
        "image": IMAGE, "redisUrl": {"secure": "x"}, "network": {"s3Cidrs": ["192.0.2.0/24"]},
        "secrets": {"keys": keys}, "artifacts": {"bucket": "previews"}, "cluster": {"identity": "local"},
        "monitoring": {"runbookBaseUrl": "https://runbooks.example.com"},
    }  # fmt: skip
    parse_config({**raw, section: {**raw.get(section, {}), key: value.rstrip()}})  # valid without it
    with pytest.raises(ConfigError) as info:
        parse_config({**raw, section: {**raw.get(section, {}), key: value}})
    assert [p.split(":")[0] for p in info.value.problems] == [f"{section}.{key}"]


def test_the_policy_pack_refuses_an_image_with_a_trailing_newline() -> None:
    def pod(image: str) -> dict[str, Any]:
        containers = [{"name": "worker", "image": image}]
        return {"kind": "Deployment", "spec": {"template": {"spec": {"containers": containers}}}}

    assert check_images_pinned(pod(IMAGE)) == []
    assert len(check_images_pinned(pod(IMAGE + "\n"))) == 1


@pytest.mark.parametrize(
    ("where", "job"),
    [
        ("$.source.inline", {**JOB, "source": {"inline": INLINE + "\n"}}),
        ("$.outputs[0].name", {**JOB, "outputs": [{**JOB["outputs"][0], "name": "thumb\n"}]}),
        ("$.jobId", {**JOB, "jobId": "abc\n"}),
    ],
)
def test_the_job_schema_refuses_a_trailing_newline(where: str, job: dict[str, Any]) -> None:
    assert validation.violations(JOB) == []
    assert [v.path for v in validation.violations(job)] == [where]

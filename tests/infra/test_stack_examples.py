"""The committed staging and prod stacks say which of their values are examples to replace."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from infra.tools.release.stackfile import KEY_CANARY, KEY_IMAGE

REPO = Path(__file__).resolve().parents[2]
#: RFC 5737's documentation ranges: they route nowhere, so a stack holding one is an example.
DOCUMENTATION = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
#: Keys whose values name things of one organisation's (a bucket, a host, a Vault path, a URL).
PER_ORGANISATION = re.compile(
    r"^\s+(- host|host|tlsSecret|bucket|region|path|s3Cidrs|cidrs|runbookBaseUrl): "
)


def lines(stack: str) -> list[str]:
    return (REPO / f"Pulumi.{stack}.yaml").read_text().splitlines()


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_example_value_is_marked(stack: str) -> None:
    text = lines(stack)
    assert any(line.startswith("# EXAMPLE VALUES:") for line in text)
    marked = 0
    for number, line in enumerate(text):
        if line.lstrip().startswith("#"):
            continue
        addresses = re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b", line)
        documentation = any(
            ipaddress.ip_network(a, strict=False).subnet_of(d) for a in addresses for d in DOCUMENTATION
        )
        if documentation or PER_ORGANISATION.match(line):
            assert line.rstrip().endswith("# example"), f"Pulumi.{stack}.yaml:{number + 1}: {line}"
            marked += 1
        if line.startswith(f"  {KEY_IMAGE}:"):
            assert "# example:" in text[number - 1], f"Pulumi.{stack}.yaml:{number + 1}: digest not marked"
    assert marked >= 5


def test_the_running_canary_digest_is_marked_too() -> None:
    text = lines("staging")
    start = text.index(f"  {KEY_CANARY}:")
    assert "# example:" in text[start - 1]

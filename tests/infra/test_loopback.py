"""``is_loopback_host``: the one rule the registry reader, the image tools and the cluster check share."""

from __future__ import annotations

import pytest

from infra.cluster_identity import is_loopback
from infra.loopback import is_loopback_host
from infra.supply_chain.registry_reads import is_loopback as registry_is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("10.250.0.1", False),  # the real node's host address: this machine, but not loopback
        ("localhost.example.com", False),
        ("0.0.0.0", False),
        ("", False),
    ],
)
def test_a_host_is_loopback_only_by_name_localhost_or_a_loopback_address(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_both_forms_parse_to_the_same_rule() -> None:
    assert registry_is_loopback("127.0.0.1:5000") and registry_is_loopback("[::1]:5000")
    assert not registry_is_loopback("ghcr.io") and not registry_is_loopback("10.0.0.1:5000")
    assert is_loopback("https://127.0.0.1:16443") and is_loopback("https://[::1]:6443")
    assert not is_loopback("https://kube.example.com:6443")

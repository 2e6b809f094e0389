"""Kubernetes names and network addresses in the stack config: DNS-1123 labels, Secret names, CIDRs."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def check_dns_label(cls: Any, v: str) -> str:
    """A Kubernetes namespace name (RFC 1123 label)."""
    if not _DNS_LABEL.fullmatch(v):
        raise ValueError(f"must be a DNS-1123 label (lowercase letters, digits, '-', max 63), got {v!r}")
    return v


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_PULL_SECRETS = 8


def check_secret_names(cls: Any, v: list[str]) -> list[str]:
    """Names of existing Secrets (DNS-1123 subdomains), each once, at most :data:`MAX_PULL_SECRETS`."""
    if len(v) > MAX_PULL_SECRETS:
        raise ValueError(f"at most {MAX_PULL_SECRETS} secrets, got {len(v)}")
    for name in v:
        if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
            raise ValueError(f"{name!r} is not a Secret name (DNS-1123 subdomain, max 253)")
    if len(set(v)) != len(v):
        raise ValueError(f"names a secret twice: {v}")
    return v


def check_cidr(cls: Any, v: list[str]) -> list[str]:
    """Every entry is an IPv4/IPv6 network in CIDR notation."""
    for cidr in v:
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            raise ValueError(f"must be CIDR blocks like 10.0.0.0/16, got {cidr!r}") from None
    return v

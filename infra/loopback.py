"""Whether a host is this machine's loopback: the one rule for where plain HTTP (a registry) and an
unverified local cluster are acceptable. The callers parse their own forms (a URL, ``host[:port]``)."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ``::1``); a bracketed IPv6 host is accepted."""
    host = host.removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

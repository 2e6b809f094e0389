"""Loopback ports for the local servers the tools, tests and benchmarks start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    Nothing holds it: pick it just before the server that binds it starts. It comes from the
    kernel's ephemeral range, which client sockets draw from too, so a port picked long before
    its use (at import, say) can be taken by then.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

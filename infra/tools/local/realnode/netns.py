"""The real node's network namespace: create it with its veth pair, enter it, and remove it.

Processes are started *inside* the namespace by switching the calling thread into it around
``posix_spawn`` (:func:`entered`), so the supervised process's own argv is the one in
``/proc/<pid>/cmdline`` (``ip netns exec`` would also give it a private mount namespace, which
would hide the kubelet's volume mounts from containerd).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

from infra import runner
from infra.errors import ProcessError
from infra.tools.local.realnode.layout import (
    HOST_ADDRESS,
    HOST_VETH,
    NETNS,
    NODE_ADDRESS,
    NODE_VETH,
    POD_SUBNET,
    VETH_PREFIX,
)

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")


def path(name: str = NETNS) -> Path:
    """The bind-mounted namespace file ``ip netns add`` makes."""
    return NETNS_DIR / name


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise ProcessError(f"setns(CLONE_NEWNET) failed: {os.strerror(err)}")


@contextlib.contextmanager
def entered(name: str = NETNS) -> Iterator[None]:
    """Run the block with this thread in namespace ``name`` (children spawned in it stay there)."""
    host = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path(name), os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(host)
    finally:
        os.close(target)
        os.close(host)


def _ip(*args: str) -> str:
    return runner.run(["ip", *args], error=ProcessError, timeout=30)


def exists(name: str = NETNS) -> bool:
    """Whether namespace ``name`` exists."""
    return path(name).exists()


def create(name: str = NETNS) -> None:
    """Make the namespace and its veth pair (host side ``HOST_ADDRESS``, node side ``NODE_ADDRESS``)."""
    if exists(name):
        return
    _ip("netns", "add", name)
    try:
        _ip("link", "add", HOST_VETH, "type", "veth", "peer", "name", NODE_VETH, "netns", name)
        _ip("addr", "add", f"{HOST_ADDRESS}/{VETH_PREFIX}", "dev", HOST_VETH)
        _ip("link", "set", HOST_VETH, "up")
        _ip("-n", name, "addr", "add", f"{NODE_ADDRESS}/{VETH_PREFIX}", "dev", NODE_VETH)
        _ip("-n", name, "link", "set", NODE_VETH, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        # Pods reach the host through the node's namespace: it forwards between the pods' bridge
        # and the veth pair, and the host routes the pods' replies back through it. Both settings
        # are the namespace's own, and the host's route goes with the veth pair.
        _ip("netns", "exec", name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        # A pod reaching a Service whose backend is on the same bridge: the reply is bridged, and
        # only bridge-nf-call-iptables lets conntrack undo kube-proxy's DNAT on it. This kernel has
        # br_netfilter built in (its sysctls are per namespace); without it the write fails, and
        # only Services between pods of this bridge are affected, so the node still starts.
        bridge_nf = "net.bridge.bridge-nf-call-iptables=1"
        runner.run(["ip", "netns", "exec", name, "sysctl", "-q", "-w", bridge_nf], error=ProcessError,
                   timeout=30, check=False)  # fmt: skip
        _ip("-n", name, "route", "add", "default", "via", HOST_ADDRESS)
        _ip("route", "add", POD_SUBNET, "via", NODE_ADDRESS, "dev", HOST_VETH)
    except ProcessError:
        delete(name)
        raise


def delete(name: str = NETNS) -> bool:
    """Remove the namespace (its end of the veth pair goes with it, and so the host's end)."""
    removed = False
    if exists(name):
        _ip("netns", "delete", name)
        removed = True
    with contextlib.suppress(ProcessError):
        _ip("link", "delete", HOST_VETH)  # only there if the namespace was removed some other way
        removed = True
    return removed

"""``python -m infra.tools.local.realnode.forward NETNS PORT... [--pods PORT...]``: loopback relays.

The kubelet in the node's namespace reaches the API server at ``127.0.0.1:<port>``, the address
its certificate names. That loopback is the namespace's own, so this process listens there and
relays each connection to the host's ``127.0.0.1:<port>``: the listeners are opened inside the
namespace, then the process returns to the host's namespace, where it connects. Pods reach
host services (Redis, say) the same way, at the host's veth address: the services themselves
keep listening on loopback only.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading

from infra.tools.local.realnode import netns
from infra.tools.local.realnode.layout import HOST_ADDRESS

LOOPBACK = "127.0.0.1"


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _serve(listener: socket.socket, port: int) -> None:
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((LOOPBACK, port), timeout=5)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _listen(address: str, port: int) -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(64)
    return listener


def main(argv: list[str]) -> None:
    """``NETNS PORT... [--pods PORT...]``: relay to the host's loopback until SIGTERM.

    Ports before ``--pods`` listen on the namespace's loopback (for the kubelet and containerd);
    ports after it on the host's end of the veth pair, ``HOST_ADDRESS`` (for pods, which reach
    it through the bridge and the node's namespace).
    """
    name, rest = argv[0], argv[1:]
    split = rest.index("--pods") if "--pods" in rest else len(rest)
    node_ports, pod_ports = [int(p) for p in rest[:split]], [int(p) for p in rest[split + 1 :]]
    with netns.entered(name):
        listeners = [(_listen(LOOPBACK, port), port) for port in node_ports]
    listeners += [(_listen(HOST_ADDRESS, port), port) for port in pod_ports]
    for listener, port in listeners:
        threading.Thread(target=_serve, args=(listener, port), daemon=True).start()
    while True:  # until SIGTERM, whose default action ends the process
        signal.pause()


if __name__ == "__main__":
    main(sys.argv[1:])

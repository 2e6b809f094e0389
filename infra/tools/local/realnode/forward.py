"""``python -m infra.tools.local.realnode.forward NETNS PORT...``: loopback ports into a namespace.

The kubelet in the node's namespace reaches the API server at ``127.0.0.1:<port>``, the address
its certificate names. That loopback is the namespace's own, so this process listens there and
relays each connection to the host's ``127.0.0.1:<port>``: the listeners are opened inside the
namespace, then the process returns to the host's namespace, where it connects.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading

from infra.tools.local.realnode import netns

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


def main(argv: list[str]) -> None:
    """Listen on each port in namespace ``argv[0]``, relay to the host's loopback until SIGTERM."""
    name, ports = argv[0], [int(p) for p in argv[1:]]
    listeners: list[tuple[socket.socket, int]] = []
    with netns.entered(name):
        for port in ports:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOOPBACK, port))
            listener.listen(64)
            listeners.append((listener, port))
    for listener, port in listeners:
        threading.Thread(target=_serve, args=(listener, port), daemon=True).start()
    while True:  # until SIGTERM, whose default action ends the process
        signal.pause()


if __name__ == "__main__":
    main(sys.argv[1:])

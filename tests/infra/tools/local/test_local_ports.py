import socket

from infra.tools.local.ports import free_port


def test_a_free_port_is_on_loopback_above_the_privileged_range_and_bindable_at_once() -> None:
    port = free_port()
    assert 1024 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # raises if something still held it
        sock.listen()

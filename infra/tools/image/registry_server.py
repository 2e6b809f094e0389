"""A real OCI registry (Debian's ``docker-registry``, distribution 2.8) served on loopback.

Used by the image tests and by ``python -m infra image registry`` where no
registry is reachable. Each instance gets its own config file and storage
directory, listens on 127.0.0.1 only, and speaks plain HTTP (the image tools
allow that for loopback hosts only, see :func:`is_loopback`).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from infra.errors import ImageError
from infra.supply_chain.registry_reads import is_loopback as is_loopback  # declared with the signature reader
from infra.tools.image.tools import require
from infra.tools.local.ports import free_port

_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@dataclass
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:<port>``, usable as an image name prefix."""

    host: str
    root: Path
    process: subprocess.Popen[bytes]


def _port_free(port: int) -> bool:
    # SO_REUSEADDR, as the registry's own listener sets it: connections of a server that just
    # stopped linger in TIME_WAIT for a minute, and without it the port would look taken.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ready(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}/v2/", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def serve(root: Path, port: int | None = None, timeout: float = 20.0) -> Iterator[Registry]:
    """Run a registry storing under ``root`` until the block ends; fail if it does not come up."""
    binary = require("docker-registry")
    root.mkdir(parents=True, exist_ok=True)
    if port is None:
        port = free_port()
    elif not _port_free(port):
        # Checked first: the registry answering /v2/ could otherwise be another one on that port.
        raise ImageError(f"cannot serve a registry on 127.0.0.1:{port}: the port is in use")
    config = root / "config.yml"
    config.write_text(_CONFIG.format(root=root / "storage", port=port))
    log_path = root / "registry.log"
    with log_path.open("ab") as log:
        # Popen, not infra.runner: the registry serves for the whole `with` block, not to completion.
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _ready(host):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-1500:]
                raise ImageError(f"docker-registry did not come up on {host} (exit {proc.poll()}):\n{tail}")
            time.sleep(0.1)
        yield Registry(host=host, root=root, process=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

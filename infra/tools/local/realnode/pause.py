"""The pod sandbox ("pause") image, made here: nothing can be pulled from a public registry.

It is one layer holding Debian's static busybox, whose entrypoint sleeps for ever, written as a
``docker save`` archive that ``ctr images import`` reads. The archive's bytes depend only on
the busybox binary (fixed mtimes, owners and order), so the image id is stable.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from infra.errors import ToolchainError
from infra.tools.local.realnode.layout import BUSYBOX

SLEEP_FOREVER = ["/bin/busybox", "sleep", "2147483647"]


def _layer(busybox: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        folder = tarfile.TarInfo("bin")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        layer.addfile(folder)
        data = busybox.read_bytes()
        entry = tarfile.TarInfo("bin/busybox")
        entry.size, entry.mode = len(data), 0o755
        layer.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def write_archive(target: Path, name: str, busybox: Path = BUSYBOX) -> str:
    """Write the image ``name`` to ``target``; return its config digest (the image id)."""
    if not busybox.is_file():
        raise ToolchainError(f"{busybox} is missing: install the Debian package busybox-static")
    layer = _layer(busybox)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": SLEEP_FOREVER, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, sort_keys=True).encode()  # fmt: skip
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name], "Layers": ["layer.tar"]}]).encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as archive:
        for member, data in ((config_name, config), ("layer.tar", layer), ("manifest.json", manifest)):
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return "sha256:" + config_name.removesuffix(".json")

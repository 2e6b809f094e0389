"""``python -m bench.profile render``: the renderer's time per stage and the encoder's share (issue 34)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.preview_corpus import KINDS

REPO = Path(__file__).resolve().parents[2]


def test_render_profile_gives_every_kind_its_stages_and_the_encoders_share() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.profile", "render", "--rounds", "1", "--corpus", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    header = ["kind", "ms/file", "decode", "resize", "encode", "WebPEncode", "encoder", "share"]
    assert lines[0].split() == header
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert list(rows) == list(KINDS)
    for kind, (total, decode, resize, encode, webp, share) in rows.items():
        numbers = [float(total), float(decode), float(resize), float(encode), float(webp)]
        assert all(n > 0 for n in numbers), (kind, numbers)
        # The stages are parts of the render, libwebp's call a part of the encoding.
        assert float(webp) <= float(encode) and float(decode) + float(resize) + float(encode) <= float(total)
        assert share.endswith("%") and 0 < int(share[:-1]) < 100

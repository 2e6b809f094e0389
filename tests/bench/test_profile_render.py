"""``python -m bench.profile render``: the renderer's time per stage and the encoder's share (issue 34)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.preview_corpus import KINDS, PDF_KINDS
from bench.profile import cpu_ms_per_file

REPO = Path(__file__).resolve().parents[2]


def test_render_profile_gives_every_kind_its_stages_and_the_encoders_share() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.profile", "render", "--rounds", "1", "--corpus", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    header = ["kind", "ms/file", "decode", "resize", "encode", "WebPEncode", "encoder", "share"]
    assert lines[0].split() == [*header, "cpu/file", "pyvips", "x-pyvips"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert list(rows) == list(KINDS)
    for kind, (total, decode, resize, encode, webp, share, cpu, vips, ratio) in rows.items():
        numbers = [float(total), float(decode), float(resize), float(encode), float(webp)]
        assert all(n > 0 for n in numbers), (kind, numbers)
        # The stages are parts of the render, libwebp's call a part of the encoding; each figure is
        # printed rounded to 0.1 ms, so three rounded parts may sum up to 0.15 ms over the total.
        parts = float(decode) + float(resize) + float(encode)
        assert float(webp) <= float(encode) and parts <= float(total) + 0.15 + 1e-9, (kind, parts, total)
        assert share.endswith("%") and 0 < int(share[:-1]) < 100
        if kind in PDF_KINDS:  # no PDF loader in pyvips-binary
            assert (cpu, vips, ratio) == ("-", "-", "-")
        else:
            assert float(cpu) > 0 and float(vips) > 0, (kind, cpu, vips)
            assert ratio.endswith("x") and abs(float(ratio[:-1]) - float(vips) / float(cpu)) < 0.01


def burn(ms: float) -> None:
    """Spend about ``ms`` milliseconds of this process's CPU."""
    end = time.process_time() + ms / 1000
    while time.process_time() < end:
        pass


def test_cpu_ms_per_file_is_each_sides_cpu_per_call() -> None:
    ours, theirs = cpu_ms_per_file([lambda: burn(4)] * 3, [lambda: burn(12), lambda: burn(12)], 3)
    assert 3.5 < ours < 6 and 11 < theirs < 15, (ours, theirs)
    calls: list[str] = []
    cpu_ms_per_file([lambda: calls.append("a")], [lambda: calls.append("b")], 2)
    assert calls == ["a", "b", "a", "b", "a", "b"]  # one warm-up each, then the sides alternate

"""Numbers the schema accepts render, and a rendering bug is permanent, not retried (issue 16, item 5).

``width: 64.0`` with ``fit: cover`` and ``quality: 80.0`` passed the schema (JSON Schema counts
``64.0`` as an integer), then raised TypeError in Pillow; the worker took that for a transient
error and retried the job three times before dead-lettering it.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import worker_media as media
from PIL import Image

from mobius_preview_client.contract import validation
from worker import constants as c
from worker import pipeline, render
from worker.render import OutputSpec, RenderLimits, child
from worker.settings import Settings

OUTPUTS = [OutputSpec("card", "jpeg", 64, 48)]
LIMITS = RenderLimits(50_000_000)
SOURCE = {"inline": base64.b64encode(media.jpeg(400, 300)).decode()}


def job(**output: Any) -> dict[str, Any]:
    return {"source": SOURCE, "outputs": [{"name": "card", "format": "jpeg", **output}]}


@pytest.mark.parametrize(
    ("job_id", "output", "size"),
    [
        ("float-size-cover", {"width": 48.0, "height": 48.0, "fit": "cover"}, (48, 48)),
        ("float-quality", {"width": 64, "height": 48, "fit": "cover", "quality": 80.0}, (64, 48)),
        ("float-contain", {"width": 64.0, "height": 64.0, "fit": "contain", "quality": 75.0}, (64, 48)),
    ],
)
async def test_float_numbers_the_schema_accepts_render(
    job_id: str, output: dict[str, Any], size: tuple[int, int], settings: Settings
) -> None:
    payload = job(**output)
    assert validation.violations(payload) == []
    renders = pipeline.render_pool(settings)
    try:
        result = await pipeline.run(job_id, payload, settings, pipeline.job_rules(settings), renders)
    finally:
        await renders.close()
    assert result.outcome == "completed" and result.manifest is not None
    [rendition] = result.manifest["renditions"]
    with Image.open(settings.data_dir / job_id / rendition["path"]) as image:
        assert (image.format, image.size) == ("JPEG", size)  # contain keeps the source's 4:3


# The render process classifies what it raises (worker.render.child.handle); the tests call
# handle() in this process so that the renderer can be replaced.
def test_a_non_io_error_while_rendering_is_permanent(monkeypatch: pytest.MonkeyPatch) -> None:
    # No real input makes the renderers raise a non-I/O error once floats are handled, so the
    # renderer is replaced here to test the classification itself.
    def broken(*_: Any) -> Any:
        raise ValueError("bad rendition maths")

    monkeypatch.setattr(render, "render", broken)
    reply, renditions = child.handle(b"any", OUTPUTS, LIMITS)
    error = "rendering failed: ValueError: bad rendition maths"
    expected = {"ok": False, "kind": "permanent", "reason": c.REASON_INTERNAL, "error": error}
    assert reply == expected and renditions == []


def test_an_io_error_while_rendering_stays_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    # Replaced for the same reason: a full disk cannot be made on demand here.
    def disk_full(*_: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(render, "render", disk_full)
    reply, renditions = child.handle(b"any", OUTPUTS, LIMITS)
    assert reply == {"ok": False, "kind": "transient", "error": "OSError: [Errno 28] No space left on device"}
    assert renditions == []

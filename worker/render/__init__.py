"""Rendering: a registry of renderers keyed by the source's sniffed media type."""

from __future__ import annotations

from collections.abc import Sequence

from worker.render import pdf, raster  # noqa: F401  (import registers the renderers)
from worker.render.limits import RenderLimits
from worker.render.registry import OutputSpec, Rendition, media_types, register, renderer_for, sniff

__all__ = ["OutputSpec", "RenderLimits", "Rendition", "media_types", "register", "render", "sniff"]


def render(data: bytes, outputs: Sequence[OutputSpec], limits: RenderLimits) -> tuple[str, list[Rendition]]:
    """Sniff ``data``, pick its renderer and produce every rendition; returns (media type, renditions).

    In the worker this runs in a render process (``worker.render.sandbox``), never in the consumer.
    """
    media_type = sniff(data)
    return media_type, renderer_for(media_type)(data, outputs, limits)

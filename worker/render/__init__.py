"""Rendering: a registry of renderers keyed by the source's sniffed media type."""

from __future__ import annotations

from collections.abc import Sequence

from worker.render import pdf, raster  # noqa: F401  (import registers the renderers)
from worker.render.registry import OutputSpec, Rendition, media_types, register, renderer_for, sniff

__all__ = ["OutputSpec", "Rendition", "media_types", "register", "render", "sniff"]


def render(data: bytes, outputs: Sequence[OutputSpec], max_pixels: int) -> tuple[str, list[Rendition]]:
    """Sniff ``data``, pick its renderer and produce every rendition; returns (media type, renditions)."""
    media_type = sniff(data)
    return media_type, renderer_for(media_type)(data, outputs, max_pixels)

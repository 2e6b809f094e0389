"""Renderers keyed by media type: a new kind of source plugs in with ``@register``, not a consumer change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from worker.errors import RenderError

if TYPE_CHECKING:
    from worker.render.limits import RenderLimits

FORMAT_MEDIA_TYPES = {"webp": "image/webp", "png": "image/png", "jpeg": "image/jpeg"}


@dataclass(frozen=True)
class OutputSpec:
    """One requested rendition (an item of the job's ``outputs``)."""

    name: str
    format: str
    width: int
    height: int
    fit: str = "contain"
    quality: int = 80

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> OutputSpec:
        """Build from a validated ``outputs`` item, applying the schema defaults.

        JSON Schema counts ``64.0`` as an integer, so the numbers are made ints here: the
        renderers then take every value the schema accepts (Pillow refuses float sizes).
        """
        return cls(
            name=item["name"],
            format=item["format"],
            width=int(item["width"]),
            height=int(item["height"]),
            fit=item.get("fit", "contain"),
            quality=int(item.get("quality", 80)),
        )


@dataclass(frozen=True)
class Rendition:
    """One produced rendition, encoded."""

    name: str
    format: str
    width: int
    height: int
    data: bytes


Renderer = Callable[[bytes, Sequence[OutputSpec], "RenderLimits"], list[Rendition]]
_RENDERERS: dict[str, Renderer] = {}

# (media type, magic test) in the order they are tried.
_SNIFFERS: list[tuple[str, Callable[[bytes], bool]]] = [
    ("image/jpeg", lambda b: b.startswith(b"\xff\xd8\xff")),
    ("image/png", lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
    ("image/gif", lambda b: b[:6] in (b"GIF87a", b"GIF89a")),
    ("image/webp", lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP"),
    ("application/pdf", lambda b: b"%PDF-" in b[:1024]),
]


def register(*media_types: str) -> Callable[[Renderer], Renderer]:
    """Decorator: make ``fn`` the renderer for ``media_types``."""

    def wrap(fn: Renderer) -> Renderer:
        for media_type in media_types:
            _RENDERERS[media_type] = fn
        return fn

    return wrap


def sniff(data: bytes) -> str:
    """The media type of ``data`` from its magic bytes; ``PermanentJobError`` if unknown or empty."""
    if not data:
        raise RenderError("source is empty")
    for media_type, test in _SNIFFERS:
        if test(data):
            return media_type
    raise RenderError(f"unsupported source type (starts with {data[:8].hex()})")


def renderer_for(media_type: str) -> Renderer:
    """The registered renderer for ``media_type``."""
    try:
        return _RENDERERS[media_type]
    except KeyError:
        raise RenderError(f"no renderer for {media_type}") from None


def media_types() -> list[str]:
    """Every media type with a renderer."""
    return sorted(_RENDERERS)

"""What one preview job does, independent of how it was dequeued.

Validate → fetch the source → render every rendition → write the artifact
set. The consumer (``worker.consumer``) wraps this with BullMQ; a faster
consumption layer can call :func:`run` unchanged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from worker import jobid, render, sources, store, validation
from worker.errors import PermanentJobError
from worker.render.registry import OutputSpec
from worker.settings import Settings


@dataclass(frozen=True)
class Result:
    """Outcome of a successful run: ``dryrun`` or ``completed`` with the manifest."""

    outcome: str
    manifest: dict[str, Any] | None = None


def limits(settings: Settings) -> sources.SourceLimits:
    """Source limits from settings."""
    return sources.SourceLimits(
        max_inline_bytes=settings.max_inline_bytes,
        max_source_bytes=settings.max_source_bytes,
        input_root=settings.input_root,
        allowed_hosts=settings.allowed_hosts,
        timeout_seconds=settings.url_timeout_seconds,
        private_addresses=settings.source_private_addresses == "allow",
    )


def _render(data: bytes, outputs: list[OutputSpec], max_pixels: int) -> tuple[str, list[render.Rendition]]:
    """Render, with any failure that is not I/O made permanent: the same bytes fail the same way
    on every attempt, so a retry would only delay the dead letter."""
    try:
        return render.render(data, outputs, max_pixels)
    except (PermanentJobError, OSError):
        raise  # OSError: a temporary file or the disk, worth another attempt
    except Exception as err:
        raise PermanentJobError(f"rendering failed: {type(err).__name__}: {err}"[:500]) from err


async def run(job_id: str, payload: Any, settings: Settings) -> Result:
    """Process one job; raises ``InvalidJobError``/``PermanentJobError``/``TransientJobError`` on failure."""
    if not jobid.safe(job_id):
        raise PermanentJobError(f"job id {job_id!r} is not a safe artifact directory name")
    job = validation.validate(payload, settings.max_inline_bytes, settings.path_sources == "on")
    if job.get("dryRun", False):
        return Result("dryrun")
    artifact_store = store.from_settings(settings)
    existing = await asyncio.to_thread(artifact_store.load_manifest, job_id)
    if existing is not None:
        return Result("completed", existing)  # an earlier attempt finished the set
    data = await sources.fetch(job["source"], limits(settings))
    outputs = [OutputSpec.from_json(o) for o in job["outputs"]]
    media_type, renditions = await asyncio.to_thread(_render, data, outputs, settings.max_pixels)
    manifest = await asyncio.to_thread(
        artifact_store.write_set, job_id, media_type, renditions, job.get("metadata", {})
    )
    return Result("completed", manifest)

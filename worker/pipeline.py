"""What one preview job does, independent of how it was dequeued.

Validate → fetch the source → render every rendition (in a render process:
``worker.render.sandbox``) → write the artifact set. The consumer
(``worker.consumer``) wraps this with BullMQ; a faster consumption layer can
call :func:`run` unchanged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from mobius_preview_client.contract import jobid, validation
from worker import sources, store
from worker.errors import PermanentJobError
from worker.render.registry import OutputSpec
from worker.render.sandbox import RenderPool
from worker.settings import Settings


@dataclass(frozen=True)
class Result:
    """Outcome of a successful run: ``dryrun`` or ``completed`` with the manifest; ``reused`` when
    the manifest was already stored (an earlier attempt rendered the set but its finish was lost)."""

    outcome: Literal["completed", "dryrun"]
    manifest: dict[str, Any] | None = None
    reused: bool = False


#: Every dry run's result, made once: a frozen dataclass costs about a microsecond to build (#34).
DRY_RUN = Result("dryrun")


@dataclass(frozen=True)
class JobRules:
    """What validating a job's payload needs from the settings, worked out once per consumer: the
    inline cap in force is derived from the Redis budget (2 µs, a few per cent of a dryRun job, #34)."""

    max_inline_bytes: int
    path_sources: bool


def job_rules(settings: Settings) -> JobRules:
    """The validation rules ``settings`` set."""
    return JobRules(settings.inline_bytes, settings.path_sources == "on")


def limits(settings: Settings) -> sources.SourceLimits:
    """Source limits from settings."""
    return sources.SourceLimits(
        max_inline_bytes=settings.inline_bytes,
        max_source_bytes=settings.max_source_bytes,
        input_root=settings.input_root,
        allowed_hosts=settings.allowed_hosts,
        timeout_seconds=settings.url_timeout_seconds,
        private_addresses=settings.source_private_addresses == "allow",
    )


def render_pool(settings: Settings) -> RenderPool:
    """The render processes of one consumer, sized and limited by its settings."""
    s = settings
    return RenderPool(s.render_pool_size, s.render_memory_bytes, s.render_timeout_seconds)


async def run(job_id: str, payload: Any, settings: Settings, rules: JobRules, renders: RenderPool) -> Result:
    """Process one job; raises ``InvalidJobError``/``PermanentJobError``/``TransientJobError`` on failure,
    or ``RenderCancelled`` when the worker's shutdown stopped its render."""
    if not jobid.safe(job_id):
        raise PermanentJobError(f"job id {job_id!r} is not a safe artifact directory name")
    job = validation.validate(payload, rules.max_inline_bytes, rules.path_sources)
    if job.get("dryRun", False):
        return DRY_RUN
    # In a thread: the first call imports boto3 and builds an S3 client, a second or more of CPU
    # that would stall the event loop and with it the lock renewals of every job in flight.
    artifact_store = await asyncio.to_thread(store.from_settings, settings)
    existing = await asyncio.to_thread(artifact_store.load_manifest, job_id)
    if existing is not None:
        return Result("completed", existing, reused=True)  # an earlier attempt finished the set
    data = await sources.fetch(job["source"], limits(settings))
    outputs = [OutputSpec.from_json(o) for o in job["outputs"]]
    media_type, renditions = await renders.render(data, outputs, settings.max_pixels)
    manifest = await asyncio.to_thread(
        artifact_store.write_set, job_id, media_type, renditions, job.get("metadata", {})
    )
    return Result("completed", manifest)

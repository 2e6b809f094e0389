"""``PreviewClient``: :class:`~mobius_preview_client.client.AsyncPreviewClient` for code without asyncio.

Each client runs its own event loop in one background thread and hands it every call, so it
keeps one Redis connection pool for its life; its methods block until their call is done.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, TypeVar

from mobius_preview_client.client import AsyncPreviewClient, Enqueued
from mobius_preview_client.config import ClientConfig

T = TypeVar("T")


class PreviewClient:
    """The same methods as :class:`AsyncPreviewClient`, blocking; close it (or use ``with``)."""

    def __init__(self, redis_url: str, **options: Any) -> None:
        """``options`` are :class:`ClientConfig`'s (``queue_name``, ``prefix``, ``queue_max``, …)."""
        self._start(ClientConfig(redis_url, **options))

    @classmethod
    def from_config(cls, config: ClientConfig) -> PreviewClient:
        """A client for ``config``."""
        client = cls.__new__(cls)
        client._start(config)
        return client

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> PreviewClient:
        """A client configured from the worker's variables (:meth:`ClientConfig.from_env`)."""
        return cls.from_config(ClientConfig.from_env(environ, **overrides))

    def _start(self, config: ClientConfig) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="preview-client", daemon=True)
        self._thread.start()
        self._client = self._run(self._connect(config))

    @staticmethod
    async def _connect(config: ClientConfig) -> AsyncPreviewClient:
        return AsyncPreviewClient.from_config(config)  # made on its loop, where it is used

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def __enter__(self) -> PreviewClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the Redis client and stop the thread (idempotent)."""
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def enqueue(self, payload: Any) -> Enqueued:
        """See :meth:`AsyncPreviewClient.enqueue`."""
        return self._run(self._client.enqueue(payload))

    def status(self, job_id: str) -> dict[str, Any] | None:
        """See :meth:`AsyncPreviewClient.status`."""
        return self._run(self._client.status(job_id))

    def wait(self, job_id: str, timeout: float) -> dict[str, Any]:
        """See :meth:`AsyncPreviewClient.wait`."""
        return self._run(self._client.wait(job_id, timeout))

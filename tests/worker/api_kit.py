"""The job API served in-process for tests: a client bound to ``create_app(settings)`` and a sample job.

Shared by the API's tests and every other test that enqueues through the API (a module of its own,
so each test file imports it wherever it is collected from, not only after ``test_api.py``).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import worker_media as media
from worker_kit import AUTH, OUTPUTS, served

from worker.api.app import create_app
from worker.settings import Settings

JSON_TYPE = {"Content-Type": "application/json"}
JOB = {"source": {"inline": base64.b64encode(media.jpeg(400, 300)).decode()}, "outputs": OUTPUTS}


@asynccontextmanager
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the API app made from ``settings``, authenticated with the test token."""
    async with served(create_app(settings), AUTH) as client:
        yield client

"""``bench/run_suite.py``'s two-process case (issue 34): two Node.js BullMQ workers drain one queue
together, as ``PREVIEW_WORKER_PROCESSES=2`` does for this worker, each at the run's concurrency."""

from __future__ import annotations

import uuid

import pytest

from bench import run_suite
from bench.redis_kit import BenchRedis
from worker import constants as c


@pytest.mark.timeout(180)
def test_two_node_processes_drain_one_queue() -> None:
    with BenchRedis() as redis:
        queue = f"run-{uuid.uuid4().hex[:8]}"
        run_suite.fill(redis, queue, 300)
        rss = run_suite.run_nodes(redis, queue, 10, 300, 2)
        assert redis.client.zcard(f"{c.BULL_PREFIX}:{queue}:completed") == 300
        assert rss > 10_000  # KiB: a Node.js process, not nothing
        assert run_suite.stamps_rate(redis, queue, 300) > 0
        assert not redis.client.llen(f"{c.BULL_PREFIX}:{queue}:wait")

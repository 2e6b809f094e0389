"""worker.pipeline: the validation rules a consumer works out once are the ones its settings set."""

from __future__ import annotations

import base64

import pytest
from worker_kit import OUTPUTS

from worker import pipeline
from worker.errors import InvalidJobError
from worker.settings import Settings


def test_job_rules_are_the_settings_cap_and_path_switch(settings: Settings) -> None:
    auto = settings.model_copy(update={"max_inline_bytes": 0, "path_sources": "on"})
    rules = pipeline.job_rules(auto)
    assert rules == pipeline.JobRules(auto.inline_bytes, True)
    assert rules.max_inline_bytes > 0  # the cap the Redis budget allows, not "no cap"
    set_cap = pipeline.job_rules(
        settings.model_copy(update={"max_inline_bytes": 4096, "path_sources": "off"})
    )
    assert set_cap == pipeline.JobRules(4096, False)


async def test_run_refuses_what_the_rules_refuse(settings: Settings) -> None:
    rules = pipeline.JobRules(max_inline_bytes=16, path_sources=False)
    renders = pipeline.render_pool(settings)
    try:
        small = {
            "source": {"inline": base64.b64encode(b"x" * 16).decode()},
            "outputs": OUTPUTS,
            "dryRun": True,
        }
        assert (await pipeline.run("rules-1", small, settings, rules, renders)).outcome == "dryrun"
        big = {**small, "source": {"inline": base64.b64encode(b"x" * 17).decode()}}
        with pytest.raises(InvalidJobError, match="inline"):
            await pipeline.run("rules-2", big, settings, rules, renders)
        by_path = {**small, "source": {"path": "in/a.jpg"}}
        with pytest.raises(InvalidJobError, match="path"):
            await pipeline.run("rules-3", by_path, settings, rules, renders)
        allowed = pipeline.JobRules(max_inline_bytes=16, path_sources=True)
        assert (await pipeline.run("rules-4", by_path, settings, allowed, renders)).outcome == "dryrun"
    finally:
        await renders.close()

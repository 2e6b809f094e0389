"""The stack outputs are exactly the names :mod:`infra.components.outputs` declares, and their
consumers read them through those names."""

from __future__ import annotations

import pytest

from infra.components import outputs
from infra.config.model import split_image
from infra.tools.release import engine
from infra.tools.snapshot.harness import run_program

NAMES = {value for key, value in vars(outputs).items() if key.isupper()}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_program_exports_exactly_the_declared_names(stack: str) -> None:
    assert set(run_program(stack).outputs) == NAMES


def test_the_release_engine_reads_the_stable_digest_from_the_programs_outputs() -> None:
    run = run_program("dev")
    template = run.object("Deployment", run.outputs[outputs.DEPLOYMENTS]["stable"])["spec"]["template"]
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == "worker"]
    assert engine.digest_from_outputs(run.outputs) == split_image(container["image"])[1]

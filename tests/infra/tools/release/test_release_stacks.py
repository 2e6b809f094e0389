"""One declaration of the deployed stacks and the promotion path (infra/tools/release/stacks.py).

The workflows cannot import it, so this checks that every stack list in them equals it, and
that a stack file exists for each stack on the path.
"""

from __future__ import annotations

import pytest
from release_testkit import REPO
from test_release_workflows import load

from infra.errors import InputError, ReleaseError
from infra.tools.ci import cli as ci
from infra.tools.release import changes, stacks


def test_every_stack_on_the_path_has_a_stack_file_and_no_stack_twice() -> None:
    assert len(set(stacks.PROMOTION_PATH)) == len(stacks.PROMOTION_PATH) >= 1
    for stack in stacks.PROMOTION_PATH:
        assert (REPO / f"Pulumi.{stack}.yaml").is_file(), stack
    assert "dev" not in stacks.PROMOTION_PATH  # the local cluster's, never deployed by CI


def test_release_yml_offers_exactly_the_deployed_stacks() -> None:
    stack = load("release.yml")["on"]["workflow_dispatch"]["inputs"]["stack"]
    assert sorted(stack["options"]) == sorted(stacks.PROMOTION_PATH), "release.yml inputs.stack.options"
    assert stack["default"] in stacks.PROMOTION_PATH


def test_pr_yml_previews_exactly_the_deployed_stacks_in_path_order() -> None:
    matrix = load("pr.yml")["jobs"]["preview"]["strategy"]["matrix"]["stack"]
    assert matrix == list(stacks.PROMOTION_PATH), "pr.yml jobs.preview.strategy.matrix.stack"


def test_main_yml_deploys_the_stacks_changed_lists_and_pins_new_images_to_the_first() -> None:
    up = load("main.yml")["jobs"]["up"]
    assert up["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.changes.outputs.stacks) }}"
    (pin,) = [s for s in load("main.yml")["jobs"]["image"]["steps"] if "--push-release" in s.get("run", "")]
    assert f"--stack {stacks.FIRST_STACK} " in pin["run"]
    assert changes.stacks_to_deploy(["infra/components/stack.py"]) == [stacks.FIRST_STACK]
    every = [f"Pulumi.{s}.yaml" for s in stacks.PROMOTION_PATH]
    assert changes.stacks_to_deploy(every) == list(stacks.PROMOTION_PATH)


def test_a_promotion_takes_the_stack_before_it_on_the_path() -> None:
    for source, target in zip(stacks.PROMOTION_PATH, stacks.PROMOTION_PATH[1:], strict=False):
        assert stacks.source_of(target) == source
        env = {"ACTION": "promote", "STACK": target, "REASON": "r"}
        assert ci.dispatch_argv(env)[:5] == ["promote", "--from", source, "--to", target]
    with pytest.raises(ReleaseError, match="is the first stack of the promotion path"):
        stacks.source_of(stacks.FIRST_STACK)
    with pytest.raises(ReleaseError, match="'dev' is not on the promotion path staging → prod"):
        stacks.source_of("dev")
    with pytest.raises(InputError, match="STACK: staging is the first stack"):
        ci.dispatch_argv({"ACTION": "promote", "STACK": "staging", "REASON": "r"})

"""Every release command on temp copies of the committed stack files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from release_testkit import AUTHOR, REPO, STACKS, Run, digest, git, merge, release_branches, snapshot

from infra.config.fields.image_refs import split_image
from infra.config.model import load_stack_file
from infra.tools.release import history
from infra.tools.release.stackfile import StackFile

D_NEW, D_OTHER = digest("a"), digest("b")


def comments(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.lstrip().startswith("#") or " # " in line]


def config_lines(path: Path, key: str) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if f":{key}" in line]


@pytest.mark.parametrize("stack", STACKS)
def test_pin_sets_image_keeps_comments_and_validates(repo: Path, run: Run, stack: str) -> None:
    path = repo / f"Pulumi.{stack}.yaml"
    before_lines = path.read_text().splitlines()
    result = run("pin", "--stack", stack, "--image", D_NEW, "--reason", "build 42")
    assert result.code == 0, result.err
    after_lines = path.read_text().splitlines()
    assert comments(path) == [line for line in before_lines if line in comments(path)]
    commented = [line for line in before_lines if line.lstrip().startswith("#") or " # " in line]
    assert len(comments(path)) == len(commented)
    assert config_lines(path, "image") == [f"mobius-preview-worker:image: {D_NEW}"]
    assert load_stack_file(path).image == D_NEW
    changed = [line for line in after_lines if line not in before_lines]
    assert all("image:" in line or "releaseId:" in line for line in changed), changed
    (entry,) = history.read(repo, stack)
    assert (entry.action, entry.after.image, entry.reason, entry.author) == ("pin", D_NEW, "build 42", AUTHOR)
    assert f"+  mobius-preview-worker:image: {D_NEW}" in result.out
    assert f"committed {entry.id} on release/{stack}/{entry.id}" in result.out


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (
            "ghcr.io/mobius/preview-worker:1.2.3",
            "must be pinned by digest (repository@sha256:<64 hex>), got tag",
        ),
        ("ghcr.io/mobius/preview-worker", "must be repository@sha256:<64 hex>"),
        (
            "ghcr.io/mobius/preview-worker@sha256:abc",
            "digest must be sha256:<64 lowercase hex>, got 'sha256:abc'",
        ),
        ("ghcr.io/mobius/preview-worker@sha256:" + "A" * 64, "digest must be sha256:<64 lowercase hex>"),
        ("ghcr.io/mobius/preview-worker:1.2@sha256:" + "a" * 64, "must not carry a tag next to the digest"),
    ],
)
def test_pin_refuses_tags_and_malformed_digests(repo: Path, run: Run, image: str, message: str) -> None:
    before = snapshot(repo)
    result = run("pin", "--stack", "prod", "--image", image)
    assert result.code == 1
    assert f"release: refused: --image: {message}" in result.err
    assert snapshot(repo) == before


def test_unknown_stack_is_refused(run: Run) -> None:
    result = run("pin", "--stack", "qa", "--image", D_NEW)
    assert result.code == 1 and "release: refused: --stack: no stack file Pulumi.qa.yaml in " in result.err
    result = run("pin", "--stack", "../etc", "--image", D_NEW)
    assert result.err.startswith("release: refused: --stack: '../etc' is not a stack name")


def test_invalid_result_is_refused_with_every_problem_and_file_untouched(repo: Path, run: Run) -> None:
    path = repo / "Pulumi.prod.yaml"
    text = path.read_text()
    path.write_text(text.replace("queueMax: 20000", "queueMax: -5").replace("cpuTarget: 65", "cpuTarget: 0"))
    git(repo, "commit", "-qam", "a broken hand edit")  # on origin's main, which releases are cut from
    git(repo, "push", "-q", "origin", "main")
    before = snapshot(repo)
    result = run("pin", "--stack", "prod", "--image", D_NEW)
    assert result.code == 1
    assert "nothing written" in result.err
    assert "  worker.queueMax: must be at least 1, got -5" in result.err
    assert "  autoscaling.cpuTarget: must be between 1 and 100, got 0" in result.err
    assert snapshot(repo) == before


def test_canary_start_step_abort_complete(repo: Path, run: Run) -> None:
    path = repo / "Pulumi.prod.yaml"
    stable = load_stack_file(path).image
    assert run("canary", "--stack", "prod", "--image", D_NEW, "--weight", "10").code == 0
    assert (load_stack_file(path).canary.weight, load_stack_file(path).canary.image) == (10, D_NEW)
    result = run("canary", "--stack", "prod", "--weight", "25")
    assert result.code == 0 and "-    weight: 10\n+    weight: 25\n" in result.out
    assert run("canary", "--stack", "prod", "--abort").code == 0
    config = load_stack_file(path)
    assert (config.canary.weight, config.canary.image, config.image) == (0, None, stable)
    assert "    image: null" in path.read_text()
    assert run("canary", "--stack", "prod", "--image", D_NEW, "--weight", "50").code == 0
    assert run("canary", "--stack", "prod", "--complete").code == 0
    config = load_stack_file(path)
    assert (config.image, config.canary.weight, config.canary.image) == (D_NEW, 0, None)
    actions = [e.action for e in history.read(repo, "prod")]
    assert actions == ["canary", "canary", "canary-abort", "canary", "canary-complete"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--weight", "150"], "--weight: must be between 0 and 100, got 150"),
        (["--weight", "20"], "Pulumi.prod.yaml has no canary image; start one with `canary --stack prod"),
        (["--image", D_NEW, "--abort"], "--image starts a canary and needs --weight N"),
        (["--image", "repo:tag", "--weight", "5"], "--image: must be pinned by digest"),
        (["--complete"], "Pulumi.prod.yaml has no canary image to make stable"),
    ],
)
def test_canary_refusals(repo: Path, run: Run, argv: list[str], message: str) -> None:
    before = snapshot(repo)
    result = run("canary", "--stack", "prod", *argv)
    assert result.code == 1 and message in result.err, result.err
    assert snapshot(repo) == before


def test_noop_writes_nothing(repo: Path, run: Run) -> None:
    current = load_stack_file(repo / "Pulumi.prod.yaml").image
    before = snapshot(repo)
    result = run("pin", "--stack", "prod", "--image", current)
    assert result.code == 0 and "already at the requested release; nothing to do" in result.out
    assert snapshot(repo) == before


def test_promote_carries_the_deployed_digest(repo: Path, run: Run) -> None:
    assert run("pin", "--stack", "staging", "--image", D_NEW).code == 0
    staging = load_stack_file(repo / "Pulumi.staging.yaml").image
    asked: list[str] = []

    def deployed(stack: str) -> str | None:
        asked.append(stack)
        return split_image(staging)[1]  # the program's `digests` output holds bare digests

    result = run("promote", "--from", "staging", "--to", "prod", deployed=deployed)
    assert result.code == 0, result.err
    assert asked == ["staging"]
    assert load_stack_file(repo / "Pulumi.prod.yaml").image == staging
    (entry,) = history.read(repo, "prod")
    assert entry.details == {
        "from": "staging",
        "image": staging,
        "deployed": split_image(staging)[1],
        "forced": False,
    }


def test_promote_as_canary(repo: Path, run: Run) -> None:
    staging = load_stack_file(repo / "Pulumi.staging.yaml").image
    argv = ("promote", "--from", "staging", "--to", "prod", "--canary", "10")
    result = run(*argv, deployed=lambda _s: staging)
    assert result.code == 0, result.err
    config = load_stack_file(repo / "Pulumi.prod.yaml")
    assert (config.canary.weight, config.canary.image) == (10, staging)


@pytest.mark.parametrize("running", [None, D_OTHER, "sha256:" + "b" * 64])
def test_promote_gate_refuses_undeployed_digest(repo: Path, run: Run, running: str | None) -> None:
    staging = load_stack_file(repo / "Pulumi.staging.yaml").image
    before = snapshot(repo)
    result = run("promote", "--from", "staging", "--to", "prod", deployed=lambda _s: running)
    assert result.code == 1
    assert (
        f"refusing to promote {staging}: stack staging's last successful `pulumi up` deployed "
        f"{running or 'nothing'}; run `pulumi up --stack staging` first, or pass --force --reason TEXT"
    ) in result.err
    assert snapshot(repo) == before


def test_promote_refuses_a_bad_weight_before_asking_the_engine(repo: Path, run: Run) -> None:
    def engine_down(_stack: str) -> str | None:
        raise AssertionError("the engine must not be asked")

    result = run("promote", "--from", "staging", "--to", "prod", "--canary", "101", deployed=engine_down)
    assert result.code == 1 and "--canary: must be between 0 and 100, got 101" in result.err
    result = run("promote", "--from", "prod", "--to", "prod", deployed=engine_down)
    assert result.code == 1 and "--from and --to name the same stack" in result.err


def test_promote_force_needs_reason_and_is_recorded(repo: Path, run: Run) -> None:
    def engine_down(_stack: str) -> str | None:
        raise AssertionError("a forced promotion must not ask the engine")

    assert run("pin", "--stack", "staging", "--image", D_NEW).code == 0
    before = snapshot(repo)
    result = run("promote", "--from", "staging", "--to", "prod", "--force", deployed=engine_down)
    assert result.code == 1 and "--force needs --reason TEXT" in result.err
    assert snapshot(repo) == before
    result = run(
        "promote",
        "--from",
        "staging",
        "--to",
        "prod",
        "--force",
        "--reason",
        "hotfix, staging down",
        deployed=engine_down,
    )
    assert result.code == 0, result.err
    (entry,) = history.read(repo, "prod")
    assert entry.reason == "hotfix, staging down"
    assert (entry.details["forced"], entry.details["deployed"]) == (True, None)
    assert load_stack_file(repo / "Pulumi.prod.yaml").image == D_NEW


def test_promote_then_rollback_restores_exact_bytes(repo: Path, run: Run) -> None:
    prod = repo / "Pulumi.prod.yaml"
    original = prod.read_bytes()
    original_id = load_stack_file(prod).release_id
    staging = load_stack_file(repo / "Pulumi.staging.yaml").image
    assert run("pin", "--stack", "staging", "--image", D_NEW).code == 0
    assert run("promote", "--from", "staging", "--to", "prod", deployed=lambda _s: D_NEW).code == 0
    assert prod.read_bytes() != original
    result = run("rollback", "--stack", "prod", "--reason", "p95 regression")
    assert result.code == 0, result.err
    assert prod.read_bytes() == original
    assert load_stack_file(repo / "Pulumi.staging.yaml").image == D_NEW != staging
    last = history.read(repo, "prod")[-1]
    assert (last.action, last.reason, last.after.release_id) == ("rollback", "p95 regression", original_id)


def test_rollback_walks_back_one_release_at_a_time_and_to_a_named_one(repo: Path, run: Run) -> None:
    prod = repo / "Pulumi.prod.yaml"
    texts = [prod.read_bytes()]
    for argv in (["--image", D_NEW, "--weight", "10"], ["--weight", "25"], ["--weight", "50"]):
        assert run("canary", "--stack", "prod", *argv).code == 0
        texts.append(prod.read_bytes())
    ids = [e.id for e in history.read(repo, "prod")]
    assert run("rollback", "--stack", "prod").code == 0
    assert prod.read_bytes() == texts[2]
    assert run("rollback", "--stack", "prod").code == 0
    assert prod.read_bytes() == texts[1]
    assert run("rollback", "--stack", "prod", "--to", ids[2]).code == 0
    assert prod.read_bytes() == texts[3]
    assert (
        run("rollback", "--stack", "prod", "--to", str(history.read(repo, "prod")[0].before.release_id)).code
        == 0
    )
    assert prod.read_bytes() == texts[0]


def test_rollback_refusals(repo: Path, run: Run) -> None:
    before = snapshot(repo)
    current = load_stack_file(repo / "Pulumi.prod.yaml").release_id
    result = run("rollback", "--stack", "prod")
    assert result.code == 1
    assert f"the current release {current} was not made by the release tool; name the release" in result.err
    result = run("rollback", "--stack", "prod", "--to", "r-19990101-01")
    assert result.code == 1 and "--to: no release 'r-19990101-01' in the history (recent: none)" in result.err
    assert snapshot(repo) == before


def test_history_table(repo: Path, run: Run) -> None:
    old = StackFile(repo / "Pulumi.staging.yaml").state()
    assert run("pin", "--stack", "staging", "--image", D_NEW, "--reason", "build 7").code == 0
    assert run("canary", "--stack", "staging", "--image", D_OTHER, "--weight", "20").code == 0
    result = run("history", "--stack", "staging")
    assert result.code == 0
    header, first, second = result.out.strip().splitlines()
    assert header.split() == ["ID", "WHEN", "(UTC)", "WHO", "ACTION", "STABLE", "CANARY", "REASON"]
    assert (
        "Rel Tester" in first
        and " pin " in first
        and f"{history.short(old.image)} → sha256:aaaaaaaaaaaa" in first
    )
    assert first.rstrip().endswith("build 7")
    was = f"{old.canary_weight}% {history.short(old.canary_image)}"
    assert " canary " in second and f"{was} → 20% sha256:bbbbbbbbbbbb" in second
    lines = (repo / "releases" / "staging.jsonl").read_text().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["pin", "canary"]


def test_edits_never_reformat(repo: Path) -> None:
    for stack in STACKS:
        sf = StackFile(repo / f"Pulumi.{stack}.yaml")
        assert sf.render(sf.state()) == sf.text


def test_the_dispatcher_runs_the_release_command(repo: Path) -> None:
    """`python -m infra release …` as CI runs it: a real process, exit codes 0 / 1 / 2."""
    python = str(REPO / ".venv" / "bin" / "python")

    def release(*argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [python, "-m", "infra", "release", "--root", str(repo), *argv]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)

    done = release("pin", "--stack", "prod", "--image", D_NEW)
    assert done.returncode == 0 and "recorded pin as release r-" in done.stdout, done.stderr
    (branch,) = release_branches(repo)
    merge(repo, branch)
    assert release("history", "--stack", "prod").stdout.count("\n") == 2
    assert release("pin", "--stack", "prod", "--image", "x:latest").returncode == 1
    assert release("pin", "--stack", "prod").returncode == 2

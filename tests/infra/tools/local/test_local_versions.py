"""Version pins: one source of truth, matching the committed wrapper modules' go.mod files."""

import re
from pathlib import Path

import pytest

from infra.tools.local import layout
from infra.tools.local.toolchain import versions
from infra.tools.local.toolchain.build import build_command, tool_path

GO_MOD_REQUIRE = re.compile(r"^\s*(?:require\s+)?(\S+) (v\S+)(?: // indirect)?$", re.M)


def requires(module_dir: str) -> dict[str, str]:
    text = (layout.GOMOD_DIR / module_dir / "go.mod").read_text()
    return dict(GO_MOD_REQUIRE.findall(text.split("\nreplace", 1)[0]))


def test_each_wrapper_module_requires_the_pinned_version() -> None:
    assert requires("pulumi")["github.com/pulumi/pulumi/pkg/v3"] == f"v{versions.PULUMI_VERSION}"
    assert requires("pulumi")["github.com/pulumi/pulumi/sdk/v3"] == f"v{versions.PULUMI_VERSION}"
    assert requires("kubernetes")["k8s.io/kubernetes"] == f"v{versions.KUBERNETES_VERSION}"
    assert requires("kwok")["sigs.k8s.io/kwok"] == f"v{versions.KWOK_VERSION}"


def test_kubernetes_staging_modules_are_replaced_by_the_matching_release() -> None:
    text = (layout.GOMOD_DIR / "kubernetes" / "go.mod").read_text()
    replaces = dict(re.findall(r"^\t(k8s\.io/\S+) => \1 (v\S+)$", text, re.M))
    staging = f"v0.{versions.KUBERNETES_VERSION.split('.', 1)[1]}"
    assert len(replaces) >= 30
    assert set(replaces.values()) == {staging}
    for name in ("k8s.io/api", "k8s.io/apiserver", "k8s.io/client-go", "k8s.io/kubectl"):
        assert replaces[name] == staging


def test_every_wrapper_module_has_a_committed_go_sum() -> None:
    for tool in versions.TOOLS:
        if isinstance(tool.source, versions.WrapperModule):
            go_sum = layout.GOMOD_DIR / tool.source.folder / "go.sum"
            assert go_sum.stat().st_size > 1000, go_sum


@pytest.mark.parametrize("tool", versions.TOOLS, ids=lambda t: t.name)
def test_build_command_is_trimmed_and_stamps_the_version(tool: versions.GoTool) -> None:
    cmd = build_command("go", tool, Path("/out"))
    assert cmd[:5] == ["go", "build", "-p", "2", "-trimpath"]
    assert cmd[-1] == tool.package
    ldflags = cmd[cmd.index("-ldflags") + 1]
    # Stamped wherever the project's own build stamps one; only prometheus-adapter's and the
    # External Secrets Operator's Makefiles set no version variable.
    assert (tool.version in ldflags) == bool(tool.ldflags)
    assert tool.ldflags or tool.name in ("prometheus-adapter", "external-secrets")
    assert tool_path(tool).parent.name == f"{tool.group}-{tool.version}"


def test_kubernetes_binaries_report_the_pinned_release() -> None:
    flags = versions.tool("kube-apiserver").ldflags
    assert f"k8s.io/component-base/version.gitVersion=v{versions.KUBERNETES_VERSION}" in flags
    assert "k8s.io/component-base/version.gitMinor=34" in flags


def test_the_engine_plugins_are_pinned_to_what_the_python_sdk_asks_for() -> None:
    language = versions.tool("pulumi-language-python")
    assert language.version == versions.PULUMI_VERSION == versions.PYTHON_PULUMI_VERSION
    assert language.source == versions.VendoredSource(f"pulumi-language-python-{versions.PULUMI_VERSION}")
    assert language.companions == ("pulumi-language-python-exec",)
    provider = versions.tool("pulumi-resource-kubernetes")
    assert provider.version == versions.PYTHON_PULUMI_KUBERNETES_VERSION
    assert provider.install == "plugin"
    assert f"Version={provider.version}" in provider.ldflags[0]
    assert isinstance(provider.source, versions.ProxyModule)
    assert provider.source.version == versions.KUBERNETES_PROVIDER_PSEUDO_VERSION
    assert set(versions.ENGINE_TOOLS) <= {t.name for t in versions.TOOLS}


def test_the_vendored_language_host_source_is_there_with_its_license_at_the_pinned_sdk() -> None:
    folder = versions.third_party_dir() / f"pulumi-language-python-{versions.PULUMI_VERSION}"
    assert "Apache License" in (folder / "LICENSE").read_text()
    go_mod = (folder / "go.mod").read_text()
    for module in ("github.com/pulumi/pulumi/pkg/v3", "github.com/pulumi/pulumi/sdk/v3"):
        assert f"\t{module} v{versions.PULUMI_VERSION}\n" in go_mod
    assert "=> ../" not in go_mod  # the upstream replaces into the pulumi repository are removed
    assert (folder / "pulumi-language-python-exec").is_file()


def test_python_pins_are_read_from_pyproject(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["pulumi==3.1.0", "pulumi-kubernetes==4.2.0", "httpx>=0.28"]\n'
    )
    assert versions.python_pin("pulumi", pyproject) == "3.1.0"
    assert versions.python_pin("pulumi-kubernetes", pyproject) == "4.2.0"
    with pytest.raises(KeyError, match="httpx is not pinned with =="):
        versions.python_pin("httpx", pyproject)


def test_the_engine_is_not_older_than_the_python_sdk() -> None:
    assert not versions.engine_older_than_sdk(), (
        f"pyproject pins pulumi=={versions.PYTHON_PULUMI_VERSION}, the engine is v{versions.PULUMI_VERSION}"
    )

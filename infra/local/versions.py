"""Every pinned version of the local toolchain, in one place.

Each :class:`GoTool` is one Go main package built from a committed wrapper
module under ``infra/local/gomod/<module>/`` (its ``go.mod`` pins the upstream
module and repeats the upstream ``replace`` directives, which ``go install``
refuses). A tool's cache key is ``<group>-<version>``, so bumping a version
here is the only step needed to rebuild it.

:data:`UNAVAILABLE` records the pieces that cannot be built on this machine,
with the exact reason, so ``bootstrap`` and the tests can report them instead
of pretending.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from infra.local.layout import REPO_ROOT

GO_VERSION_MIN = (1, 25)  # pulumi pkg/v3 v3.259.0 declares `go 1.25.11`

PULUMI_VERSION = "3.259.0"
KUBERNETES_VERSION = "1.34.2"
KWOK_VERSION = "0.7.0"
ETCD_DEBIAN_PACKAGE = "etcd-server"  # 3.4.23 on bookworm; kube-apiserver 1.34 accepts it (tested)


def python_pin(package: str, pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The exact version pyproject.toml pins ``package`` to (``package==X``)."""
    requirements: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    for requirement in requirements:
        name, sep, version = requirement.partition("==")
        if sep and name.strip() == package:
            return version.strip()
    raise KeyError(f"{package} is not pinned with == in {pyproject}")


# The Python packages the program runs with: the engine must be at least as
# new as the SDK, and must find the provider plugin of exactly this version.
PYTHON_PULUMI_VERSION = python_pin("pulumi")
PYTHON_PULUMI_KUBERNETES_VERSION = python_pin("pulumi-kubernetes")

_K8S_VERSION_PKGS = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


@dataclass(frozen=True)
class GoTool:
    """One binary built with ``go build`` from a wrapper module."""

    name: str  # the binary's file name
    group: str  # cache folder prefix; tools of one group share a wrapper module
    version: str
    module_dir: str  # under infra/local/gomod/
    package: str  # the main package's import path
    ldflags: tuple[str, ...] = ()  # `-X` settings so the binary reports its real version

    @property
    def cache_key(self) -> str:
        """Folder name under the toolchain cache: changes whenever the version does."""
        return f"{self.group}-{self.version}"


def _k8s_ldflags(version: str) -> tuple[str, ...]:
    major, minor, _ = version.split(".")
    flags: list[str] = []
    for pkg in _K8S_VERSION_PKGS:
        flags += [
            f"{pkg}.gitVersion=v{version}",
            f"{pkg}.gitMajor={major}",
            f"{pkg}.gitMinor={minor}",
            f"{pkg}.gitTreeState=clean",
            f"{pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return tuple(flags)


def _k8s(name: str) -> GoTool:
    return GoTool(
        name=name,
        group="kubernetes",
        version=KUBERNETES_VERSION,
        module_dir="kubernetes",
        package=f"k8s.io/kubernetes/cmd/{name}",
        ldflags=_k8s_ldflags(KUBERNETES_VERSION),
    )


# Build order: the engine first (it unblocks the most), then the control plane.
TOOLS: tuple[GoTool, ...] = (
    GoTool(
        name="pulumi",
        group="pulumi",
        version=PULUMI_VERSION,
        module_dir="pulumi",
        package="github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
        ldflags=(f"github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v{PULUMI_VERSION}",),
    ),
    _k8s("kube-apiserver"),
    _k8s("kube-controller-manager"),
    _k8s("kube-scheduler"),
    _k8s("kubectl"),
    GoTool(
        name="kwok",
        group="kwok",
        version=KWOK_VERSION,
        module_dir="kwok",
        package="sigs.k8s.io/kwok/cmd/kwok",
        ldflags=(
            f"sigs.k8s.io/kwok/pkg/consts.Version=v{KWOK_VERSION}",
            f"sigs.k8s.io/kwok/pkg/consts.KubeVersion=v{KUBERNETES_VERSION}",
        ),
    ),
)

# Pieces the Go module proxy reachable here does not serve at any probed
# version (it answers 403 "This module version is not available"), so they
# cannot be built here. Keys are the plugin binary names.
UNAVAILABLE: dict[str, str] = {
    "pulumi-language-python": (
        "go: github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3@v3.259.0: "
        "403 Forbidden (probed v3.210.0, v3.220.0, v3.230.0, v3.250.0, v3.259.0, v3.260.0, v3.271.0, "
        "v3.272.0: all 403; the @v/list endpoint is 403 too)"
    ),
    "pulumi-resource-kubernetes": (
        f"go: github.com/pulumi/pulumi-kubernetes/provider/v4@v{PYTHON_PULUMI_KUBERNETES_VERSION}: "
        "403 Forbidden (probed v4.0.0, v4.5.0, v4.10.0, v4.17.0, v4.18.0-v4.34.2, provider/v3 "
        "v3.0.0 and v3.30.2, github.com/pulumi/pulumi-kubernetes@v4.34.2: all 403)"
    ),
}


def engine_older_than_sdk() -> bool:
    """True while the pinned CLI is older than the pinned Python SDK (a pin to fix)."""

    def as_tuple(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split("."))

    return as_tuple(PULUMI_VERSION) < as_tuple(PYTHON_PULUMI_VERSION)


def tool(name: str) -> GoTool:
    """The pinned tool called ``name``; raises KeyError for an unknown name."""
    for candidate in TOOLS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)

"""Every pinned version of the local toolchain, in one place.

A ``# renovate: datasource=go depName=<module>`` line above a version is what the Renovate
config (renovate.json) reads to keep it current; a new tool's version gets one too.

Each :class:`GoTool` is one Go main package built from one of three kinds of
source (:class:`WrapperModule`, :class:`VendoredSource`, :class:`ProxyModule`).
A tool's cache key is ``<group>-<version>``, so bumping a version here is the
only step needed to rebuild it. Tools with ``install="plugin"`` are Pulumi
resource plugins: they are installed into ``PULUMI_HOME`` with
``pulumi plugin install``, never found through ``PATH``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from infra.tools.local.layout import REPO_ROOT

GO_VERSION_MIN = (1, 25)  # pulumi pkg/v3 v3.259.0 declares `go 1.25.11`

# renovate: datasource=go depName=github.com/pulumi/pulumi/pkg/v3
PULUMI_VERSION = "3.259.0"
# The Kubernetes provider's tagged versions answer 403 on the proxy; this pseudo-version is the
# commit of tag v4.25.0 (f47bc2d6f199), which is served.
KUBERNETES_PROVIDER_PSEUDO_VERSION = "v4.0.0-20260115033456-f47bc2d6f199"
# Third-party source no registry serves (see its SOURCE.md): ``$MOBIUS_THIRD_PARTY`` or
# ``<repo>/../shared/third_party``.
ENV_THIRD_PARTY = "MOBIUS_THIRD_PARTY"
# renovate: datasource=go depName=k8s.io/kubernetes
KUBERNETES_VERSION = "1.34.2"
# renovate: datasource=go depName=sigs.k8s.io/kwok
KWOK_VERSION = "0.7.0"
# renovate: datasource=go depName=sigs.k8s.io/prometheus-adapter
PROMETHEUS_ADAPTER_VERSION = "0.12.0"
# renovate: datasource=go depName=github.com/external-secrets/external-secrets
EXTERNAL_SECRETS_VERSION = "0.16.2"
# renovate: datasource=go depName=github.com/kedacore/keda/v2
KEDA_VERSION = "2.18.0"
# Sloth, the SLO rule generator the project's own rules are compared with (docs/slo.md): built
# only for that test, like an add-on.
# renovate: datasource=go depName=github.com/slok/sloth
SLOTH_VERSION = "0.16.0"
# Syft, the SBOM generator every image build runs (docs/supply-chain.md): built on demand.
# renovate: datasource=go depName=github.com/anchore/syft
SYFT_VERSION = "1.57.2"
# cosign, which signs each built image and attests its provenance (docs/supply-chain.md): built on
# demand by the image build and the tests that cross-check the pure-Python verifier. v2, whose
# signatures are the ``sha256-<hex>.sig`` tag that verifier reads (v3 writes bundles by default).
# renovate: datasource=go depName=github.com/sigstore/cosign/v2
COSIGN_VERSION = "2.6.5"
# kube-state-metrics, whose pod and HPA series the dashboard's pods and autoscaler-target panels
# read (docs/dashboard.md): built only for the e2e test that proves those queries.
# renovate: datasource=go depName=k8s.io/kube-state-metrics/v2
KUBE_STATE_METRICS_VERSION = "2.20.0"
_KEDA = "github.com/kedacore/keda/v2"
_ESO = "github.com/external-secrets/external-secrets"
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
class WrapperModule:
    """A committed module under ``toolchain/gomod/<folder>``: its go.sum is complete, built read-only."""

    folder: str


@dataclass(frozen=True)
class VendoredSource:
    """Unchanged third-party source in ``<third_party>/<folder>``, copied to a scratch folder to build."""

    folder: str


@dataclass(frozen=True)
class ProxyModule:
    """A module from the Go proxy at ``version``, copied out of the module cache and prepared to build.

    ``drop_replace`` removes ``replace`` lines that point outside the module zip (the
    required version is then fetched from the proxy); ``generate`` is a folder in which
    ``go run generate.go`` writes files the main package embeds, with ``VERSION`` set;
    ``keep_imports`` trims a registry file of blank imports to the plugins a build needs.
    """

    path: str
    version: str
    drop_replace: tuple[str, ...] = ()
    generate: str | None = None
    # ``(file, (import path, ...))``: in each file, drop every blank import (``_ "…"``) not listed.
    keep_imports: tuple[tuple[str, tuple[str, ...]], ...] = ()


Source = WrapperModule | VendoredSource | ProxyModule


@dataclass(frozen=True)
class GoTool:
    """One binary built with ``go build``."""

    name: str  # the binary's file name
    group: str  # cache folder prefix; tools of one group share a source
    version: str
    source: Source
    package: str  # the main package: an import path, or a folder relative to the source
    ldflags: tuple[str, ...] = ()  # `-X` settings so the binary reports its real version
    companions: tuple[str, ...] = ()  # files of the source copied next to the binary
    install: Literal["bin", "plugin"] = "bin"
    # The arguments that make an installed binary print its version (``v<version>``): a pinned
    # binary already on PATH is used instead of building. None: never looked up on PATH.
    version_args: tuple[str, ...] | None = field(default=None)
    # An add-on the cluster runs only for some tests (prometheus-adapter, the External Secrets
    # Operator, KEDA): built by ``bootstrap --only`` (deps/setup.d/45-addons.sh), never by a plain bootstrap.
    addon: bool = False

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


def _k8s(name: str, addon: bool = False) -> GoTool:
    return GoTool(
        name=name,
        group="kubernetes",
        version=KUBERNETES_VERSION,
        source=WrapperModule("kubernetes"),
        package=f"k8s.io/kubernetes/cmd/{name}",
        ldflags=_k8s_ldflags(KUBERNETES_VERSION),
        addon=addon,
    )


_PULUMI_VERSION_PKG = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"

# Build order: the engine and its two plugins first (the demo needs them most), then the
# control plane. The provider plugin is installed with the CLI, so it comes after it.
TOOLS: tuple[GoTool, ...] = (
    GoTool(
        name="pulumi",
        group="pulumi",
        version=PULUMI_VERSION,
        source=WrapperModule("pulumi"),
        package="github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
        ldflags=(f"{_PULUMI_VERSION_PKG}=v{PULUMI_VERSION}",),
        version_args=("version",),
    ),
    GoTool(
        name="pulumi-language-python",
        group="pulumi",  # beside the CLI, where the engine looks for its bundled language hosts
        version=PULUMI_VERSION,
        source=VendoredSource(f"pulumi-language-python-{PULUMI_VERSION}"),
        package=".",
        ldflags=(f"{_PULUMI_VERSION_PKG}=v{PULUMI_VERSION}",),
        # The host runs the program through this shim, which it looks for next to itself.
        companions=("pulumi-language-python-exec",),
        version_args=("-version",),
    ),
    GoTool(
        name="pulumi-resource-kubernetes",
        group="pulumi-resource-kubernetes",
        version=PYTHON_PULUMI_KUBERNETES_VERSION,
        source=ProxyModule(
            "github.com/pulumi/pulumi-kubernetes/provider/v4",
            KUBERNETES_PROVIDER_PSEUDO_VERSION,
            drop_replace=("github.com/pulumi/pulumi-kubernetes/sdk/v4",),
            generate="cmd/pulumi-resource-kubernetes",
        ),
        package="./cmd/pulumi-resource-kubernetes",
        ldflags=(
            "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version="
            f"{PYTHON_PULUMI_KUBERNETES_VERSION}",
        ),
        install="plugin",
    ),
    _k8s("kube-apiserver"),
    _k8s("kube-controller-manager"),
    _k8s("kube-scheduler"),
    _k8s("kubectl"),
    # The real node's kubelet and its kube-proxy (issue 31): add-ons built by
    # deps/setup.d/44-kubelet.sh (`./dev up` and the tests) and by `local up --real-node`.
    _k8s("kubelet", addon=True),
    _k8s("kube-proxy", addon=True),
    GoTool(
        name="kwok",
        group="kwok",
        version=KWOK_VERSION,
        source=WrapperModule("kwok"),
        package="sigs.k8s.io/kwok/cmd/kwok",
        ldflags=(
            f"sigs.k8s.io/kwok/pkg/consts.Version=v{KWOK_VERSION}",
            f"sigs.k8s.io/kwok/pkg/consts.KubeVersion=v{KUBERNETES_VERSION}",
        ),
    ),
    GoTool(
        name="prometheus-adapter",
        group="prometheus-adapter",
        version=PROMETHEUS_ADAPTER_VERSION,
        source=ProxyModule("sigs.k8s.io/prometheus-adapter", f"v{PROMETHEUS_ADAPTER_VERSION}"),
        package="./cmd/adapter",
        addon=True,
    ),
    GoTool(
        name="external-secrets",
        group="external-secrets",
        version=EXTERNAL_SECRETS_VERSION,
        # Its go.mod replaces sprig with a fork (a module version, not a path): built from a copy.
        # Only the providers and generators this project uses are registered: with all 38
        # providers' cloud SDKs the build is several times longer, and no test could reach them.
        source=ProxyModule(
            _ESO,
            f"v{EXTERNAL_SECRETS_VERSION}",
            keep_imports=(
                (
                    "pkg/provider/register/register.go",
                    tuple(f"{_ESO}/pkg/provider/{p}" for p in ("fake", "kubernetes", "vault")),
                ),
                (
                    "pkg/generator/register/register.go",
                    tuple(f"{_ESO}/pkg/generator/{g}" for g in ("fake", "password", "uuid", "vault")),
                ),
            ),
        ),
        package=".",
        addon=True,
    ),
    # KEDA's operator (scalers, ScaledObject controller, the HPA it owns) and its metrics API
    # server (serves external.metrics.k8s.io to the HPA controller, asking the operator over
    # gRPC). Built whole: measured 5 min cold here, scalers' SDKs included.
    *(
        GoTool(
            name=name,
            group="keda",
            version=KEDA_VERSION,
            source=ProxyModule(_KEDA, f"v{KEDA_VERSION}"),
            package=f"./cmd/{folder}",
            ldflags=(f"{_KEDA}/version.Version={KEDA_VERSION}",),
            addon=True,
        )
        for name, folder in (("keda-operator", "operator"), ("keda-metrics-apiserver", "adapter"))
    ),
    GoTool(
        name="sloth",
        group="sloth",
        version=SLOTH_VERSION,
        source=ProxyModule("github.com/slok/sloth", f"v{SLOTH_VERSION}"),
        package="./cmd/sloth",
        ldflags=(f"github.com/slok/sloth/internal/info.Version=v{SLOTH_VERSION}",),
        addon=True,
    ),
    GoTool(
        name="syft",
        group="syft",
        version=SYFT_VERSION,
        source=ProxyModule("github.com/anchore/syft", f"v{SYFT_VERSION}"),
        package="./cmd/syft",
        ldflags=(f"main.version={SYFT_VERSION}",),
        addon=True,
    ),
    GoTool(
        name="cosign",
        group="cosign",
        version=COSIGN_VERSION,
        source=ProxyModule("github.com/sigstore/cosign/v2", f"v{COSIGN_VERSION}"),
        package="./cmd/cosign",
        ldflags=(f"sigs.k8s.io/release-utils/version.gitVersion=v{COSIGN_VERSION}",),
        addon=True,
    ),
    GoTool(
        name="kube-state-metrics",
        group="kube-state-metrics",
        version=KUBE_STATE_METRICS_VERSION,
        source=ProxyModule("k8s.io/kube-state-metrics/v2", f"v{KUBE_STATE_METRICS_VERSION}"),
        package=".",
        ldflags=(f"github.com/prometheus/common/version.Version=v{KUBE_STATE_METRICS_VERSION}",),
        addon=True,
    ),
)

#: What ``pulumi preview``/``up`` of the program need: the CLI and its two plugins.
ENGINE_TOOLS = ("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes")


def third_party_dir() -> Path:
    """Where vendored third-party source lives (``$MOBIUS_THIRD_PARTY`` or ``../shared/third_party``)."""
    env = os.environ.get(ENV_THIRD_PARTY)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "third_party"


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

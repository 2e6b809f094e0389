"""Run the real Pulumi program (``__main__.py``) under ``pulumi.runtime.set_mocks``.

Used by ``python -m infra snapshot`` and by the tests: the program and its
config loading run unchanged; the mocks only record what it declares. The cluster
identity check (:mod:`infra.cluster_identity`) is the one thing replaced: the harness answers it
as "the cluster the stack names" (or, with ``cluster=``, as a given cluster), explicitly. Config
comes from a stack file (secure values become placeholder secrets, since their
passphrase is not needed to see the shape of the stack) plus optional overrides.
"""

from __future__ import annotations

import asyncio
import copy
import json
import runpy
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.cluster_identity import Seen, use_reader
from infra.config.model import CONFIG_NAMESPACE
from infra.config.sections.cluster_target import ClusterTarget
from infra.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
PROGRAM = ROOT / "__main__.py"
MASK = "<secret>"


@dataclass(frozen=True)
class Declared:
    """One resource the program registered."""

    type: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    #: The provider reference the resource was registered with (``urn::id``; "" for the default).
    provider: str = ""
    #: Whether it was registered ``protect``ed.
    protected: bool = False

    @property
    def manifest(self) -> dict[str, Any]:
        """The Kubernetes object as declared, with secret values replaced by ``<secret>``."""
        masked: dict[str, Any] = mask_secrets(self.inputs)
        return masked

    def has_secret(self, *path: str) -> bool:
        """Whether the value at ``path`` (or a parent of it) was declared as a Pulumi secret."""
        node: Any = self.inputs
        for key in path:
            if rpc.is_rpc_secret(node):
                return True
            node = node[key]
        return rpc.is_rpc_secret(node)


@dataclass
class ProgramRun:
    """What one run of the program declared and exported."""

    stack: str
    resources: list[Declared] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    urns: list[str] = field(default_factory=list)
    #: resource name → URNs it was registered as depending on (explicit and from inputs).
    dependencies: dict[str, list[str]] = field(default_factory=dict)

    def objects(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Manifests of the Kubernetes objects, optionally of one kind."""
        found = [r.manifest for r in self.resources if r.custom and r.type.startswith("kubernetes:")]
        return [m for m in found if kind is None or m.get("kind") == kind]

    def object(self, kind: str, name: str) -> dict[str, Any]:
        """The one object of ``kind`` named ``name``."""
        matches = [m for m in self.objects(kind) if m["metadata"]["name"] == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} {kind} objects named {name!r}")
        return matches[0]

    def resource(self, kind: str, name: str) -> Declared:
        """The declared resource of ``kind`` named ``name`` (inputs unmasked)."""
        for r in self.resources:
            if r.custom and r.inputs.get("kind") == kind and r.inputs["metadata"]["name"] == name:
                return r
        raise KeyError(f"no {kind} named {name!r}")


def _mask_leaves(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_leaves(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_leaves(v) for v in value]
    return MASK


def mask_secrets(value: Any) -> Any:
    """Replace every value inside a Pulumi secret by ``<secret>``, keeping mapping keys.

    (The engine marks a whole top-level property secret, e.g. all of ``stringData``;
    its keys name env vars, only the values are secret.) Also turns integral floats
    back into ints: the engine's wire format (protobuf Struct) carries numbers as doubles.
    """
    if rpc.is_rpc_secret(value):
        return _mask_leaves(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class _Recorder(pulumi.runtime.Mocks):
    def __init__(self, run: ProgramRun) -> None:
        self.run = run
        self.providers: dict[tuple[str, str], str] = {}
        self.protected: set[tuple[str, str]] = set()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        inputs = copy.deepcopy(args.inputs)
        provider = self.providers.get((args.typ, args.name), "")
        protected = (args.typ, args.name) in self.protected
        self.run.resources.append(
            Declared(args.typ, args.name, inputs, bool(args.custom), provider, protected)
        )
        return (f"{args.name}-id", inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return ({}, None)


class _Monitor(pulumi.runtime.mocks.MockMonitor):
    """The stock mock monitor, also recording each registration's dependencies."""

    def __init__(self, run: ProgramRun) -> None:
        self.recorder = _Recorder(run)
        super().__init__(self.recorder)
        self.run = run

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method name
        self.run.dependencies[request.name] = list(request.dependencies)
        self.recorder.providers[request.type, request.name] = request.provider
        if request.protect:
            self.recorder.protected.add((request.type, request.name))
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def stack_file_config(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Namespaced config of a stack file as the engine passes it, and its secret keys.

    As the engine does, a key with a secure value anywhere under it (``--path`` secrets, e.g.
    ``secretValues.X``) is a secret key as a whole, its secure values decrypted.
    """
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    config: dict[str, Any] = {}
    secret_keys: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        if _is_secure(value):
            config[key] = f"mock-secret-value-of-{key}"
            secret_keys.append(key)
        elif isinstance(value, dict) and any(_is_secure(v) for v in value.values()):
            config[key] = {
                k: f"mock-secret-value-of-{key}.{k}" if _is_secure(v) else v for k, v in value.items()
            }
            secret_keys.append(key)
        else:
            config[key] = value
    return config, secret_keys


def named_cluster(target: ClusterTarget) -> Seen:
    """The cluster ``target`` names, as the mock harness answers the identity check."""
    uid = "00000000-0000-4000-8000-000000000000" if target.is_local else target.identity
    return Seen(uid=uid, server=target.server or "https://127.0.0.1:6443")


def _engine_value(value: Any) -> str:
    # The engine hands every config value to the program as a string; structured ones as JSON.
    return value if isinstance(value, str) else json.dumps(value)


_OWN_LOOP: list[asyncio.AbstractEventLoop] = []


def _ensure_event_loop() -> None:
    """Give this thread an open event loop: Pulumi's runtime creates its futures on it.

    Something earlier in the same process (an asyncio test runner, say) may have closed the
    thread's loop or set it to None; the program must still run. The harness then uses one
    loop of its own, kept for the life of the process: a loop dropped unclosed would leak its
    self-pipe sockets.
    """
    try:
        with warnings.catch_warnings():  # 3.12+ warns when the thread has no loop yet; 3.14 raises
            warnings.simplefilter("ignore", DeprecationWarning)
            if not asyncio.get_event_loop().is_closed():
                return
    except RuntimeError:
        pass
    if not _OWN_LOOP or _OWN_LOOP[0].is_closed():
        _OWN_LOOP[:] = [asyncio.new_event_loop()]
    asyncio.set_event_loop(_OWN_LOOP[0])


def run_program(
    stack: str,
    config: Mapping[str, Any] | None = None,
    secret_keys: list[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    record: ProgramRun | None = None,
    cluster: Seen | None = None,
) -> ProgramRun:
    """Run ``__main__.py`` for ``stack`` with the given namespaced config (default: its stack file).

    ``overrides`` replace un-namespaced top-level keys (e.g. ``{"canary": {...}}``); ``None``
    values remove a key. Raises ConfigError when the config is invalid, like the real engine
    would report; pass ``record`` to see what was registered before that. ``cluster`` is what
    the cluster identity check reads (default: the very cluster the stack's config names).
    """
    if config is None:
        config, secret_keys = stack_file_config(ROOT / f"Pulumi.{stack}.yaml")
    merged = dict(config)
    for key, value in (overrides or {}).items():
        if value is None:
            merged.pop(f"{CONFIG_NAMESPACE}:{key}", None)
        else:
            merged[f"{CONFIG_NAMESPACE}:{key}"] = value
    run = record if record is not None else ProgramRun(stack)
    _ensure_event_loop()
    pulumi.runtime.set_all_config({k: _engine_value(v) for k, v in merged.items()}, secret_keys or [])
    monitor = _Monitor(run)
    pulumi.runtime.set_mocks(
        monitor.mocks, project=CONFIG_NAMESPACE, stack=stack, preview=False, monitor=monitor
    )
    root: Any = pulumi.runtime.settings.get_root_resource()

    def program() -> None:
        runpy.run_path(str(PROGRAM), run_name="__main__")

    with use_reader(lambda target: cluster or named_cluster(target)):
        _sync_await(run_pulumi_func(program))
    run.urns = list(monitor.resources)
    for key, out in root.outputs.items():
        run.outputs[key] = _sync_await(pulumi.Output.from_input(out).future())
    return run


__all__ = ["ConfigError", "Declared", "ProgramRun", "mask_secrets", "run_program", "stack_file_config"]

"""Build the worker image, push it, read the pushed digest and pin it into a stack.

The whole flow of ``python -m infra image build``. Every input that ends up in
the image is explicit (:class:`Request`) or derived from the source tree in a
deterministic way: the timestamp is ``SOURCE_DATE_EPOCH`` or the last commit's
time, the revision is the commit, the version is ``pyproject.toml``'s.
"""

from __future__ import annotations

import io
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra import runner
from infra.errors import ImageError, InfraError
from infra.tools.image import buildah, sbom, signing

Log = Callable[[str], None]
WHEELHOUSE_MOUNT = "/wheelhouse"
# Env vars under which a host that sits behind a TLS-intercepting proxy names its CA bundle.
CA_ENV_VARS = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
# The OCI distribution spec's grammar for repository names and tags.
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class Request:
    """What to build and where to push it; ``None`` fields are derived from ``context``."""

    context: Path
    registry: str
    repository: str
    tag: str | None = None
    base_image: str | None = None
    timestamp: int | None = None
    revision: str | None = None
    source: str | None = None
    stack: str | None = None
    release_root: Path | None = None
    release_flags: tuple[str, ...] = ()  # passed to `release pin`: --push or --no-git
    ca_bundle: Path | None = None
    wheelhouse: Path | None = None
    storage: buildah.Storage = field(default_factory=buildah.Storage)
    no_cache: bool = False
    sbom_dir: Path | None = None  # where the SBOM goes; None: ``<context>/dist/sbom``
    no_sbom: bool = False  # the local demo's loopback image only (docs/supply-chain.md#sbom)
    sign_key: str | None = None  # a cosign key reference (infra/tools/image/signing.py); None: unsigned


@dataclass(frozen=True)
class Result:
    """The pushed image: ``reference`` is ``registry/repository@sha256:…``, what gets pinned."""

    image_id: str
    digest: str
    reference: str
    tagged: str
    pinned: str | None = None
    sbom: Path | None = None  # the SPDX JSON of the pushed digest (infra/tools/image/sbom.py)
    signed: signing.Signed | None = None


def _git(context: Path, *args: str) -> str | None:
    """What ``git`` says in ``context``; None when it fails or is missing (the values fall back)."""
    try:
        done = runner.call(["git", "-C", str(context), *args], error=ImageError, timeout=10)
    except ImageError:
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def source_epoch(context: Path) -> int:
    """``SOURCE_DATE_EPOCH`` if set, else the last commit's time, else 0."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        if not env.isdigit():
            raise ImageError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, got {env!r}")
        return int(env)
    commit_time = _git(context, "log", "-1", "--format=%ct")
    return int(commit_time) if commit_time and commit_time.isdigit() else 0


def project_version(context: Path) -> str:
    """``[project].version`` of ``context/pyproject.toml``."""
    path = context / "pyproject.toml"
    try:
        return str(tomllib.loads(path.read_text())["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise ImageError(f"cannot read [project].version from {path}: {exc}") from exc


def default_ca_bundle() -> Path | None:
    """The CA bundle the host's own pip/requests use, if one is configured and exists."""
    for name in CA_ENV_VARS:
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return None


def github_source() -> str | None:
    """The repository URL in a GitHub Actions run (``GITHUB_SERVER_URL``/``GITHUB_REPOSITORY``)."""
    server, repo = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    return f"{server}/{repo}" if server and repo else None


def check_names(registry: str, repository: str, tag: str) -> None:
    """Refuse names that would make an invalid image reference, before a long build."""
    if not registry or "/" in registry or registry.startswith(("http:", "https:")):
        raise ImageError(f"--registry must be HOST[:PORT] without a scheme or path, got {registry!r}")
    if not _REPOSITORY.fullmatch(repository):
        raise ImageError(
            f"--repository must be lower-case path components like team/name, got {repository!r}"
        )
    if not _TAG.fullmatch(tag):
        raise ImageError(f"--tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}, got {tag!r}")


def build_args(req: Request, revision: str) -> dict[str, str]:
    """The Dockerfile ARGs for ``req``: base image, version, revision, source."""
    args = {"VERSION": project_version(req.context), "REVISION": revision}
    if req.base_image:
        args["BASE_IMAGE"] = req.base_image
    source = req.source or github_source()
    if source:
        args["SOURCE"] = source
    if req.wheelhouse:
        args.update(PIP_FIND_LINKS=WHEELHOUSE_MOUNT, PIP_NO_INDEX="1")
    return args


#: The OCI labels whose value comes from a build arg (see ``buildah.BuildSpec.labels``).
ARG_LABELS = {"VERSION": "org.opencontainers.image.version", "REVISION": "org.opencontainers.image.revision",
              "SOURCE": "org.opencontainers.image.source"}  # fmt: skip


def publish(req: Request, log: Log) -> Result:
    """Build, push, inspect and (with ``req.stack``) pin; return what was pushed."""
    if not (req.context / "Dockerfile").is_file():
        raise ImageError(f"no Dockerfile in {req.context}")
    if req.wheelhouse and not req.wheelhouse.is_dir():
        raise ImageError(f"--wheelhouse {req.wheelhouse} is not a directory (`python -m infra image wheels`)")
    revision = req.revision or _git(req.context, "rev-parse", "HEAD") or "unknown"
    tag = req.tag or (revision[:12] if revision != "unknown" else "dev")
    check_names(req.registry, req.repository, tag)
    timestamp = req.timestamp if req.timestamp is not None else source_epoch(req.context)
    ca = req.ca_bundle or default_ca_bundle()
    sbom_dir = None if req.no_sbom else sbom.ready_dir(req.sbom_dir or req.context / sbom.DEFAULT_DIR)
    name = f"{req.registry}/{req.repository}"
    args = build_args(req, revision)
    spec = buildah.BuildSpec(
        context=req.context,
        tag=f"{name}:{tag}",
        timestamp=timestamp,
        build_args=args,
        labels={label: args[arg] for arg, label in ARG_LABELS.items() if arg in args},
        secrets={"ca-bundle": ca} if ca else {},
        volumes={req.wheelhouse.resolve(): WHEELHOUSE_MOUNT} if req.wheelhouse else {},
        no_cache=req.no_cache,
        pull_tls_verify=buildah.tls_flag(req.base_image or "docker.io").endswith("true"),
    )
    log(f"building {spec.tag} (revision {revision}, timestamp {timestamp})")
    image_id = buildah.build(spec, req.storage)
    log(f"built {image_id}; pushing to {name}:{tag}")
    digest = buildah.push(spec.tag, f"{name}:{tag}", req.storage)
    reference = f"{name}@{digest}"
    log(f"pushed {reference}")
    sbom_file = (
        sbom.write(reference, sbom.sbom_path(sbom_dir, req.repository, digest), log) if sbom_dir else None
    )
    signed = None
    if req.sign_key:  # before the pin: a stack that names a signer checks the signature
        predicate = signing.provenance(
            req.context, reference, revision, req.source or github_source(), req.base_image, timestamp
        )
        signed = signing.sign(reference, req.sign_key, predicate, log, sbom_file)
    else:
        log(signing.unsigned_note(reference))
    pinned = None
    if req.stack:
        pinned = pin(reference, req.stack, req.release_root, revision, log, req.release_flags)
    return Result(
        image_id=image_id,
        digest=digest,
        reference=reference,
        tagged=f"{name}:{tag}",
        pinned=pinned,
        sbom=sbom_file,
        signed=signed,
    )


def pin(
    reference: str, stack: str, root: Path | None, revision: str, log: Log, flags: tuple[str, ...] = ()
) -> str:
    """Pin ``reference`` as ``stack``'s stable image, as ``python -m infra release pin`` does (a release PR).

    The release command runs in this process; what it prints goes to ``log``, so stdout keeps
    only the pushed reference.
    """
    # Imported here: the release commands load the Pulumi engine, which no other image command needs.
    from infra.tools.release import cli as release_cli

    argv = ["--root", str(root)] if root is not None else []
    argv += ["pin", "--stack", stack, "--image", reference, "--reason", f"image build of {revision}", *flags]
    report = io.StringIO()
    try:
        release_cli.execute(argv, out=report)
    except InfraError as exc:
        raise ImageError(f"pinning {reference} into stack {stack!r} failed:\n{exc}") from exc
    finally:
        if report.getvalue():
            log(report.getvalue().rstrip())
    return stack

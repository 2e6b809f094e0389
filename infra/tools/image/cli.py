"""``python -m infra image build|base|registry``: the worker image without a Docker daemon.

``build``    build the Dockerfile with buildah, push, read the digest with skopeo, write its SBOM,
             pin it (--stack)
``base``     make (or reuse) the cached debootstrap base image; --push copies it to a registry
``wheels``   download (or reuse) the locked wheels for offline builds; prints the directory
``registry`` serve Debian's docker-registry on loopback until interrupted

Exit codes: 0 done, 1 failed (the message says which command and why), 2 usage error.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from infra.errors import ImageError
from infra.tools.image import buildah, publish, registry_server, rootfs, signing, wheels

REPO_ROOT = Path(__file__).resolve().parents[3]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="python -m infra image", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="build, push and (with --stack) pin the worker image")
    b.add_argument("--registry", required=True, metavar="HOST[:PORT]")
    b.add_argument("--repository", required=True, metavar="NAME", help="e.g. mobius/preview-worker")
    b.add_argument(
        "--stack",
        "--pin",
        dest="stack",
        help="pin the pushed digest into this stack (python -m infra release pin)",
    )
    b.add_argument("--root", type=Path, help="repository root for pinning (default: found from cwd)")
    pin_git = b.add_mutually_exclusive_group()
    pin_git.add_argument(
        "--push-release",
        action="store_true",
        help="push the pin's release branch and open its pull request (release pin --push)",
    )
    pin_git.add_argument(
        "--no-git", action="store_true", help="pin by editing the files only (release pin --no-git)"
    )
    b.add_argument("--tag", help="tag to push as well (default: the revision's first 12 characters)")
    b.add_argument("--context", type=Path, default=REPO_ROOT, help="build context (default: the repository)")
    b.add_argument("--base-image", help="override the Dockerfile's BASE_IMAGE (a digest-pinned reference)")
    b.add_argument("--timestamp", type=int, help="epoch seconds (default: SOURCE_DATE_EPOCH or commit time)")
    b.add_argument("--revision", help="OCI revision label (default: git rev-parse HEAD)")
    b.add_argument("--source", help="OCI source label (default: the GitHub run's, else the Dockerfile's)")
    b.add_argument("--ca-bundle", type=Path, help="CA bundle for pip inside the build (default: $PIP_CERT …)")
    b.add_argument("--wheelhouse", type=Path, help="install wheels from DIR, no index (see `wheels`)")
    b.add_argument("--storage-root", type=Path, help="private buildah storage (default: buildah's own)")
    b.add_argument("--no-cache", action="store_true", help="rebuild every step")
    sbom_where = b.add_mutually_exclusive_group()
    sbom_where.add_argument("--sbom-dir", type=Path, help="where the SBOM goes (default: CONTEXT/dist/sbom)")
    sbom_where.add_argument("--no-sbom", action="store_true", help="write no SBOM (a loopback image only)")
    b.add_argument(
        "--sign-key",
        metavar="KEY",
        help="cosign key (file or env://VAR; password in $COSIGN_PASSWORD), or `keyless` (the CI's OIDC "
        "identity), to sign the digest and attest its provenance (default: $IMAGE_SIGNING_KEY; none: "
        "pushed unsigned, with a warning)",
    )

    s = sub.add_parser("base", help="make or reuse the debootstrap base image")
    s.add_argument("--mirror", help="Debian mirror URL (default: the one apt uses)")
    s.add_argument("--push", metavar="HOST[:PORT]/REPO:TAG", help="copy it to a registry; prints REPO@digest")

    w = sub.add_parser("wheels", help="download or reuse the locked wheels for offline builds")
    w.add_argument("--context", type=Path, default=REPO_ROOT, help="where Dockerfile and uv.lock are")

    r = sub.add_parser("registry", help="serve a registry on 127.0.0.1 until interrupted")
    r.add_argument("--root", type=Path, required=True, help="config and storage directory")
    r.add_argument("--port", type=int, help="port (default: a free one)")
    return top


def main(argv: list[str]) -> int:
    """Run one image command."""
    args = parser().parse_args(argv)
    try:
        if args.command == "build":
            return _build(args)
        if args.command == "base":
            return _base(args)
        if args.command == "wheels":
            print(wheels.ensure_wheelhouse(args.context.resolve(), log=_log))
            return 0
        return _registry(args)
    except ImageError as exc:
        print(f"image {args.command}: {exc}", file=sys.stderr)
        return 1


def _build(args: argparse.Namespace) -> int:
    req = publish.Request(
        context=args.context.resolve(),
        registry=args.registry,
        repository=args.repository,
        tag=args.tag,
        base_image=args.base_image,
        timestamp=args.timestamp,
        revision=args.revision,
        source=args.source,
        stack=args.stack,
        release_root=args.root,
        release_flags=("--push",) if args.push_release else ("--no-git",) if args.no_git else (),
        ca_bundle=args.ca_bundle,
        wheelhouse=args.wheelhouse,
        storage=buildah.Storage(root=args.storage_root),
        no_cache=args.no_cache,
        sbom_dir=args.sbom_dir,
        no_sbom=args.no_sbom,
        sign_key=signing.signing_key(args.sign_key),
    )
    result = publish.publish(req, _log)
    print(result.reference)
    return 0


def _base(args: argparse.Namespace) -> int:
    image = rootfs.ensure_base(rootfs.BaseSpec.for_host(args.mirror), log=_log)
    if not args.push:
        print(f"{image.oci_ref} {image.digest}")
        return 0
    name, _, tag = args.push.rpartition(":")
    if not name or "/" in tag or "/" not in name:
        raise ImageError(f"--push must be HOST[:PORT]/REPO:TAG, got {args.push!r}")
    digest = buildah.copy(image.oci_ref, args.push)
    if digest != image.digest:
        raise ImageError(f"{args.push} serves {digest}, the cached base is {image.digest}")
    print(f"{name}@{digest}")
    return 0


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _registry(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop)  # so a TERM also stops the registry process
    with registry_server.serve(args.root.resolve(), args.port) as reg:
        print(reg.host, flush=True)
        try:
            while reg.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
    return 1

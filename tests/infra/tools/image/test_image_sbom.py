"""The SBOM every image build writes (syft, SPDX JSON) against the image itself, run with podman:
its Python packages are the distributions the image's Python finds, its Debian packages are the
image's dpkg status, both as (name, version) and both ways (nothing missing, nothing extra).

It reads the SBOM of the suite's shared build (``built``); the first build of a machine also
builds syft (about 6 minutes cold, once), hence the longer timeout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from image_testkit import REPOSITORY, Podman

from infra.errors import ImageError
from infra.tools.image import buildah, cli, publish, sbom

pytestmark = pytest.mark.timeout(1200)

#: Every distribution the image's Python finds (the venv's and the system's site directories).
LIST_DISTRIBUTIONS = """
import glob, importlib.metadata as md, json, sys
paths = sys.path + glob.glob("/usr/lib/python3*/*-packages")
paths += glob.glob("/usr/local/lib/python3*/site-packages")
print(json.dumps(sorted({(d.metadata["Name"], d.version) for d in md.distributions(path=paths)})))
"""
Packages = set[tuple[str, str]]


def canonical(packages: Iterable[tuple[str, str]]) -> Packages:
    """Names as PEP 503 compares them (``PyYAML`` is ``pyyaml``, ``ruamel.yaml`` is ``ruamel-yaml``)."""
    return {(re.sub(r"[-_.]+", "-", name).lower(), version) for name, version in packages}


def dpkg_installed(status: str) -> Packages:
    """``(Package, Version)`` of every stanza of a dpkg status file that is installed."""
    found: Packages = set()
    for stanza in re.split(r"\n\s*\n", status.strip()):
        fields = dict(re.findall(r"^([\w-]+):[ \t]*(.*)$", stanza, re.M))
        if fields.get("Status", "").endswith(" installed"):
            found.add((fields["Package"], fields["Version"]))
    return found


def mismatch(kind: str, listed: Packages, real: Packages) -> str:
    """What the SBOM lacks and what it lists that the image does not have; empty when they agree."""
    problems = [f"{kind} in the image, not in the SBOM: {sorted(real - listed)}"] if real - listed else []
    problems += [f"{kind} in the SBOM, not in the image: {sorted(listed - real)}"] if listed - real else []
    return "\n".join(problems)


@pytest.fixture(scope="module")
def in_image(built: publish.Result, storage: buildah.Storage) -> dict[str, Packages]:
    """The image's Python distributions and installed Debian packages, read by running it."""
    podman = Podman(storage)
    podman("pull", "--quiet", "--tls-verify=false", built.reference)
    run = ["run", "--rm", "--network", "none", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
    python = podman(*run, "--entrypoint", "python", built.reference, "-c", LIST_DISTRIBUTIONS)
    status = podman(*run, "--entrypoint", "cat", built.reference, "/var/lib/dpkg/status")
    return {sbom.PYPI: canonical(map(tuple, json.loads(python))), sbom.DEB: dpkg_installed(status)}


def test_the_build_wrote_the_sbom_of_its_digest(built: publish.Result) -> None:
    assert built.sbom is not None
    assert built.sbom == sbom.sbom_path(built.sbom.parent, REPOSITORY, built.digest)
    doc = sbom.load(built.sbom)
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["name"] == built.tagged.rsplit(":", 1)[0]
    assert not list(built.sbom.parent.glob(".*.partial"))


def test_sbom_lists_exactly_the_images_python_and_debian_packages(
    built: publish.Result, in_image: dict[str, Packages]
) -> None:
    assert built.sbom is not None
    doc = sbom.load(built.sbom)
    python, debian = canonical(sbom.packages(doc, sbom.PYPI)), sbom.packages(doc, sbom.DEB)
    # The worker's own dependencies are there, and Debian's Python with its libraries.
    assert {"bullmq", "redis", "pillow", "uvloop"} <= {name for name, _ in python}
    assert {"python3", "libc6", "dpkg"} <= {name for name, _ in debian}
    assert mismatch("Python packages", python, in_image[sbom.PYPI]) == ""
    assert mismatch("Debian packages", debian, in_image[sbom.DEB]) == ""


def test_the_comparison_catches_a_missing_and_an_extra_package(
    built: publish.Result, in_image: dict[str, Packages]
) -> None:
    assert built.sbom is not None
    doc = sbom.load(built.sbom)
    [dropped] = [p for p in doc["packages"] if p["name"] == "pillow"]
    doc["packages"].remove(dropped)
    invented = {**dropped, "name": "not-in-the-image", "SPDXID": "SPDXRef-invented"}
    doc["packages"].append(invented)
    python = canonical(sbom.packages(doc, sbom.PYPI))
    found = mismatch("Python packages", python, in_image[sbom.PYPI])
    assert f"not in the SBOM: [('pillow', '{dropped['versionInfo']}')]" in found
    assert f"not in the image: [('not-in-the-image', '{dropped['versionInfo']}')]" in found
    debian = sbom.packages(doc, sbom.DEB) - {("dpkg", next(v for n, v in in_image[sbom.DEB] if n == "dpkg"))}
    assert "dpkg" in mismatch("Debian packages", debian, in_image[sbom.DEB])


def test_a_file_that_is_not_spdx_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "x.spdx.json"
    path.write_text('{"bomFormat": "CycloneDX"}')
    with pytest.raises(ImageError, match=r"x\.spdx\.json is not an SPDX JSON document"):
        sbom.load(path)


def test_an_sbom_dir_that_cannot_be_a_folder_is_refused_before_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    taken = tmp_path / "a-file"
    taken.write_text("")
    argv = ["build", "--registry", "127.0.0.1:5000", "--repository", "x", "--revision", "r1",
            "--context", str(tmp_path), "--sbom-dir", str(taken / "sbom")]  # fmt: skip
    assert cli.main(argv) == 1
    assert (
        f"image build: --sbom-dir {taken / 'sbom'} cannot be a folder for the SBOM" in capsys.readouterr().err
    )

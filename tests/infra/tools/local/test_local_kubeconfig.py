"""The admin kubeconfig: one cluster/user/context pointing at the PKI files, private."""

from pathlib import Path

import yaml

from infra.tools.local.cluster import kubeconfig
from infra.tools.local.cluster.certs import Pki


def test_kubeconfig_points_at_the_server_and_pki(tmp_path: Path) -> None:
    pki = Pki.at(tmp_path / "pki")
    path = kubeconfig.write(tmp_path / "kc" / "kubeconfig", "https://127.0.0.1:16443", pki)
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == kubeconfig.CONTEXT
    assert doc["clusters"] == [
        {
            "name": kubeconfig.CONTEXT,
            "cluster": {"server": "https://127.0.0.1:16443", "certificate-authority": str(pki.ca_cert)},
        }
    ]
    assert doc["users"][0]["user"] == {
        "client-certificate": str(pki.admin_cert),
        "client-key": str(pki.admin_key),
    }
    assert doc["contexts"][0]["context"] == {
        "cluster": kubeconfig.CONTEXT,
        "user": kubeconfig.CONTEXT,
        "namespace": "default",
    }
    assert path.stat().st_mode & 0o777 == 0o600


def test_rewrite_replaces_the_whole_file(tmp_path: Path) -> None:
    pki = Pki.at(tmp_path)
    path = tmp_path / "kubeconfig"
    path.write_text("x" * 10_000)
    kubeconfig.write(path, "https://127.0.0.1:1", pki)
    assert yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1"

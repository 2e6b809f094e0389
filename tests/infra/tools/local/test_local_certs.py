"""The local PKI: every cert chains to the CA, carries the right names and usages, keys are private."""

import subprocess
from pathlib import Path

import pytest

from infra.tools.local.cluster.certs import ADMIN_GROUP, ADMIN_USER, Pki, ensure_pki


def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki") / "pki")


def test_every_cert_chains_to_the_ca(pki: Pki) -> None:
    out = openssl("verify", "-CAfile", str(pki.ca_cert), str(pki.server_cert), str(pki.admin_cert))
    assert out.splitlines() == [f"{pki.server_cert}: OK", f"{pki.admin_cert}: OK"]


def test_server_cert_names_loopback_and_the_kubernetes_service(pki: Pki) -> None:
    sans = openssl("x509", "-in", str(pki.server_cert), "-noout", "-ext", "subjectAltName")
    for name in (
        "IP Address:127.0.0.1",
        "DNS:localhost",
        "DNS:kubernetes.default.svc",
        "IP Address:10.96.0.1",
    ):
        assert name in sans
    usage = openssl("x509", "-in", str(pki.server_cert), "-noout", "-ext", "extendedKeyUsage")
    assert "TLS Web Server Authentication" in usage
    assert "Client" not in usage


def test_admin_cert_is_a_system_masters_client(pki: Pki) -> None:
    subject = openssl("x509", "-in", str(pki.admin_cert), "-noout", "-subject", "-nameopt", "RFC2253")
    assert subject.strip() == f"subject=CN={ADMIN_USER},O={ADMIN_GROUP}"
    usage = openssl("x509", "-in", str(pki.admin_cert), "-noout", "-ext", "extendedKeyUsage")
    assert "TLS Web Client Authentication" in usage


def test_service_account_public_key_matches_the_signing_key(pki: Pki) -> None:
    derived = openssl("pkey", "-in", str(pki.sa_key), "-pubout")
    assert derived == pki.sa_pub.read_text()
    assert "Private-Key: (2048 bit" in openssl("pkey", "-in", str(pki.sa_key), "-noout", "-text")


def test_private_keys_are_owner_only(pki: Pki) -> None:
    for key in (pki.ca_key, pki.server_key, pki.admin_key, pki.sa_key):
        assert key.stat().st_mode & 0o777 == 0o600, key
    assert pki.root.stat().st_mode & 0o777 == 0o700


def test_second_call_keeps_the_existing_pki(pki: Pki) -> None:
    before = {path: path.read_bytes() for path in pki.files()}
    again = ensure_pki(pki.root)
    assert {path: path.read_bytes() for path in again.files()} == before


def test_a_partial_set_is_remade_whole(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki")
    old_ca = pki.ca_cert.read_bytes()
    pki.admin_cert.unlink()
    remade = ensure_pki(tmp_path / "pki")
    assert remade.ca_cert.read_bytes() != old_ca
    openssl("verify", "-CAfile", str(remade.ca_cert), str(remade.server_cert), str(remade.admin_cert))

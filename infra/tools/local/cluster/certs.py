"""The local cluster's PKI: a CA, the API server's serving cert, an admin client cert, the SA key pair,
and the front-proxy CA and client cert the API server shows aggregated API servers (metrics adapters).

Made with the ``openssl`` command (Debian's, listed in deps/apt-local.txt) so
no Python crypto dependency is needed. Keys are ECDSA P-256 (fast to make);
the service-account signing key is RSA-2048, the kube default. Every private
key is written mode 0600. ``ensure_pki`` is idempotent: it keeps a complete
existing set and only makes what is missing.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from infra import runner
from infra.errors import CertError

ADMIN_USER = "mobius-local-admin"
ADMIN_GROUP = "system:masters"  # bound to cluster-admin by the API server's bootstrap RBAC
SERVICE_IP = "10.96.0.1"  # first address of the service range the API server is given
API_SANS = (
    "IP:127.0.0.1",
    "IP:::1",
    f"IP:{SERVICE_IP}",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)
DAYS = 3650
#: The CN of the client cert the API server proxies aggregated requests with; the only name an
#: add-on trusts to tell it who the user is (``--requestheader-allowed-names``).
FRONT_PROXY_CLIENT = "front-proxy-client"


@dataclass(frozen=True)
class Pki:
    """Paths of every file of the local PKI."""

    root: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path
    front_proxy_ca_cert: Path
    front_proxy_ca_key: Path
    front_proxy_client_cert: Path
    front_proxy_client_key: Path

    @classmethod
    def at(cls, root: Path) -> Pki:
        """The PKI file layout under ``root``."""
        return cls(
            root=root,
            ca_cert=root / "ca.crt",
            ca_key=root / "ca.key",
            server_cert=root / "apiserver.crt",
            server_key=root / "apiserver.key",
            admin_cert=root / "admin.crt",
            admin_key=root / "admin.key",
            sa_key=root / "sa.key",
            sa_pub=root / "sa.pub",
            front_proxy_ca_cert=root / "front-proxy-ca.crt",
            front_proxy_ca_key=root / "front-proxy-ca.key",
            front_proxy_client_cert=root / "front-proxy-client.crt",
            front_proxy_client_key=root / "front-proxy-client.key",
        )

    def files(self) -> list[Path]:
        """Every file, in the order they are made."""
        return [
            self.ca_cert, self.ca_key, self.server_cert, self.server_key,
            self.admin_cert, self.admin_key, self.sa_key, self.sa_pub,
            self.front_proxy_ca_cert, self.front_proxy_ca_key,
            self.front_proxy_client_cert, self.front_proxy_client_key,
        ]  # fmt: skip

    def serving_cert(self, name: str, dns_names: tuple[str, ...], client: bool = False) -> tuple[Path, Path]:
        """A serving cert (and key) for an add-on, signed by the cluster CA; made once, then reused.

        ``client`` also allows it as a TLS client cert (KEDA's operator and metrics server use
        one cert both ways for their mutual TLS)."""
        cert, key = self.root / f"{name}.crt", self.root / f"{name}.key"
        if not (cert.exists() and key.exists()):
            sans = ",".join(f"DNS:{dns}" for dns in dns_names)
            usage = "serverAuth,clientAuth" if client else "serverAuth"
            _make_leaf(self.ca_cert, self.ca_key, cert, key, f"/CN={name}",
                       "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                       f"extendedKeyUsage={usage}\nsubjectAltName={sans}\n")  # fmt: skip
        return cert, key

    def client_cert(self, name: str, user: str, group: str | None = None) -> tuple[Path, Path]:
        """A client cert (and key) for ``user`` (and ``group``, if given), signed by the CA; made once."""
        cert, key = self.root / f"{name}.crt", self.root / f"{name}.key"
        if not (cert.exists() and key.exists()):
            subject = f"/O={group}/CN={user}" if group else f"/CN={user}"
            _make_leaf(self.ca_cert, self.ca_key, cert, key, subject,
                       "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                       "extendedKeyUsage=clientAuth\n")  # fmt: skip
        return cert, key


def _openssl(*args: str) -> None:
    runner.run(["openssl", *args], error=CertError)


def _ec_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    path.chmod(0o600)


def _make_ca(cert: Path, key: Path, name: str) -> None:
    _ec_key(key)
    _openssl(
        "req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={name}",
        "-days", str(DAYS), "-out", str(cert),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip


def _make_leaf(ca_cert: Path, ca_key: Path, cert: Path, key: Path, subject: str, extensions: str) -> None:
    _ec_key(key)
    with tempfile.TemporaryDirectory() as tmp:
        csr, ext = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
        ext.write_text(extensions)
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
            "-set_serial", f"0x{cert.stem.encode().hex()}", "-days", str(DAYS),
            "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip


def ensure_pki(root: Path) -> Pki:
    """Make the CA, serving cert, admin cert and SA key pair under ``root`` unless all exist."""
    pki = Pki.at(root)
    if all(path.exists() for path in pki.files()):
        return pki
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    for path in pki.files():
        path.unlink(missing_ok=True)  # a partial set is remade whole, so every cert chains to one CA
    _make_ca(pki.ca_cert, pki.ca_key, "mobius-local-ca")
    _make_leaf(
        pki.ca_cert, pki.ca_key, pki.server_cert, pki.server_key, "/CN=kube-apiserver",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={','.join(API_SANS)}\n",
    )  # fmt: skip
    _make_leaf(
        pki.ca_cert, pki.ca_key, pki.admin_cert, pki.admin_key, f"/O={ADMIN_GROUP}/CN={ADMIN_USER}",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )  # fmt: skip
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pki.sa_key))
    pki.sa_key.chmod(0o600)
    _openssl("pkey", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub))
    # A CA of its own, as Kubernetes advises: a client cert of the cluster CA must not be able to
    # pose as the front proxy.
    _make_ca(pki.front_proxy_ca_cert, pki.front_proxy_ca_key, "mobius-local-front-proxy-ca")
    _make_leaf(
        pki.front_proxy_ca_cert, pki.front_proxy_ca_key, pki.front_proxy_client_cert,
        pki.front_proxy_client_key, f"/CN={FRONT_PROXY_CLIENT}",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )  # fmt: skip
    return pki

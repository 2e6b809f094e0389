"""The stack config's ``imageSignature`` section: who must have signed the images a stack runs.

Either a cosign ``publicKey`` (the PEM of ``cosign.pub``; not a secret) or a keyless pair,
``identity`` (the certificate's subject, e.g. a GitHub workflow's
``https://github.com/ORG/REPO/.github/workflows/main.yml@refs/heads/main``) and ``issuer`` (the
OIDC issuer, ``https://token.actions.githubusercontent.com`` on GitHub). With the section set,
``release pin``/``canary``/``promote`` and the policy pack refuse an image without a valid
signature by that signer (``infra/supply_chain/cosign_signatures.py``; docs/supply-chain.md).
"""

from __future__ import annotations

import re

from pydantic import model_validator

from infra.config.base_model import Model, cross_field
from infra.supply_chain import p256

_URL = re.compile(r"https://[^\s]{1,500}")


class ImageSignature(Model):
    """One signer: a public key, or a keyless identity and issuer (exactly one of the two)."""

    public_key: str | None = None
    identity: str | None = None
    issuer: str | None = None

    @model_validator(mode="after")
    def _one_signer(self) -> ImageSignature:
        problems: list[tuple[str, str]] = []
        keyless = self.identity is not None or self.issuer is not None
        if self.public_key is not None and keyless:
            problems.append(("publicKey", "set either publicKey or identity and issuer, not both"))
        elif self.public_key is not None:
            try:
                p256.load_public_key(self.public_key)
            except p256.KeyFormatError as exc:
                problems.append(("publicKey", f"must be the PEM of a cosign public key (cosign.pub): {exc}"))
        elif not keyless:
            problems.append(("publicKey", "required: a cosign public key, or identity and issuer (keyless)"))
        for name, value in (("identity", self.identity), ("issuer", self.issuer)):
            if keyless and self.public_key is None and (value is None or not _URL.fullmatch(value)):
                problems.append((name, f"keyless signing needs an https:// URL, got {str(value)[:80]!r}"))
        if problems:
            raise cross_field(*problems)
        return self

    def signer(self) -> dict[str, str | None]:
        """The keyword arguments of :func:`infra.supply_chain.cosign_signatures.verify`."""
        return {"public_key": self.public_key, "identity": self.identity, "issuer": self.issuer}

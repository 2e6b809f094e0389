"""The signature gate: a release that brings an image into a stack needs it signed by the stack's signer.

The signer is the stack file's ``imageSignature`` (``infra/config/sections/image_signature.py``);
a stack without one is not checked here (the policy pack warns about such a production stack).
Each image the release adds to the file (a pin, a canary start, a promotion, a rollback to an
older digest) is checked in the registry before anything is written
(:func:`infra.supply_chain.cosign_signatures.verify`), so a refused release changes nothing.
"""

from __future__ import annotations

from typing import TextIO

from infra.config.model import load_stack_file
from infra.errors import ReleaseError, SignatureError
from infra.supply_chain import cosign_signatures
from infra.tools.release.stackfile import ReleaseState, StackFile


def new_images(before: ReleaseState, after: ReleaseState) -> list[str]:
    """The images ``after`` runs that ``before`` did not (stable first, then the canary)."""
    old = {before.image, before.canary_image}
    found = [image for image in (after.image, after.canary_image) if image and image not in old]
    return list(dict.fromkeys(found))


def check(sf: StackFile, after: ReleaseState, out: TextIO) -> None:
    """Refuse (:class:`ReleaseError`) an image new to ``sf`` that its signer did not sign."""
    images = new_images(sf.state(), after)
    signer = load_stack_file(sf.path).image_signature if images else None
    if signer is None:
        return
    for image in images:
        try:
            verified = cosign_signatures.verify(image, **signer.signer())
        except SignatureError as exc:
            raise ReleaseError(
                f"{sf.path.name} requires images signed by its imageSignature signer; nothing written:\n"
                f"  {exc}"
            ) from None
        print(f"{image}: signature verified ({verified.signer})", file=out)

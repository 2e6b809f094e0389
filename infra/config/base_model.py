"""The base of every stack config section, the secret value type, and the checks any section uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    import pulumi

#: The project's config namespace in a stack file (``mobius-preview-worker:<key>``).
CONFIG_NAMESPACE = "mobius-preview-worker"


class Secret:
    """A secret config value; never printed.

    From a stack file only the ``ciphertext`` is known; inside the Pulumi
    program ``output`` is the decrypted value as a secret Output.
    (A plain class, not a dataclass, so pydantic treats it as opaque.)
    """

    __slots__ = ("ciphertext", "output")

    def __init__(self, ciphertext: str | None = None, output: pulumi.Output[str] | None = None) -> None:
        self.ciphertext = ciphertext
        self.output = output

    def __repr__(self) -> str:
        return "Secret(***)"


class Model(BaseModel):
    """Base of every config section: camelCase keys, unknown keys refused, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def cross_field(*problems: tuple[str, str]) -> PydanticCustomError:
    """An error about sub-keys of the model being validated, e.g. ``("image", "required …")``."""
    return PydanticCustomError("stack_rule", "{problems}", {"problems": list(problems)})


def number_text(x: float) -> str:
    """A bound as people write it: ``5``, ``0.05``, ``1e+06``."""
    return str(x) if isinstance(x, int) else f"{x:g}"


def check_range(lo: float, hi: float) -> Callable[[Any, Any], Any]:
    """A field check: ``lo <= v <= hi`` (None passes, for optional fields)."""

    def check(cls: Any, v: Any) -> Any:
        if v is not None and not lo <= v <= hi:
            raise ValueError(f"must be between {number_text(lo)} and {number_text(hi)}, got {v!r}")
        return v

    return check

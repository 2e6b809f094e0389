"""Building blocks of the stack config model: the base model, field checks with
clear reasons, and the translation of pydantic errors into ``"<dotted.key>: <reason>"``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    import pulumi

CONFIG_NAMESPACE = "mobius-preview-worker"

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_REGISTRY = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*(?::[0-9]+)?/)"
REPOSITORY_RE = re.compile(rf"{_REGISTRY}?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
#: The one accepted image form: ``repository@sha256:<64 lowercase hex>`` (no tag).
IMAGE_RE = re.compile(REPOSITORY_RE.pattern + r"@sha256:[0-9a-f]{64}")


def validate_image_ref(ref: str) -> str:
    """Return ``ref`` if it is ``repository@sha256:<64 hex>``; else raise ValueError saying why."""
    repo, at, digest = ref.partition("@")
    last = repo.rsplit("/", 1)[-1]
    if not at:
        if ":" in last:
            raise ValueError(f"must be pinned by digest (repository@sha256:<64 hex>), got tag {ref!r}")
        raise ValueError(f"must be repository@sha256:<64 hex>, got {ref!r}")
    if ":" in last:
        raise ValueError(f"must not carry a tag next to the digest, got {ref!r}")
    if not DIGEST_RE.fullmatch(digest):
        raise ValueError(f"digest must be sha256:<64 lowercase hex>, got {digest!r}")
    if not REPOSITORY_RE.fullmatch(repo):
        raise ValueError(f"repository {repo!r} is not a valid image repository")
    return ref


def split_image(ref: str) -> tuple[str, str]:
    """``repo@sha256:…`` → ``(repo, "sha256:…")``."""
    repo, _, digest = ref.partition("@")
    return repo, digest


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


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def check_range(lo: float, hi: float) -> Callable[[Any, Any], Any]:
    """A field check: ``lo <= v <= hi`` (None passes, for optional fields)."""

    def check(cls: Any, v: Any) -> Any:
        if v is not None and not lo <= v <= hi:
            raise ValueError(f"must be between {_number(lo)} and {_number(hi)}, got {v!r}")
        return v

    return check


def check_image(cls: Any, v: str) -> str:
    """A field check for image references (see :func:`validate_image_ref`)."""
    return validate_image_ref(v)


# Units largest first, each at most once, as Prometheus and Go write them: 1h30m, 90s, 500ms.
_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?")
_UNIT_SECONDS = (3600.0, 60.0, 1.0, 0.001)


def duration_seconds(text: str) -> float:
    """The one duration grammar of the stack config and the release tool, in seconds.

    ``30s``, ``10m``, ``1h30m`` or ``500ms``: what Prometheus accepts for a rule's ``for`` and a
    range, and the External Secrets Operator for ``refreshInterval``.
    """
    match = _DURATION.fullmatch(text) if text else None
    if match is None:
        raise ValueError(f"must be a duration like 30s, 10m or 1h, got {text!r}")
    return sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_SECONDS, strict=True) if n)


def check_duration(cls: Any, v: str) -> str:
    """A field check for :func:`duration_seconds`."""
    duration_seconds(v)
    return v


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def check_dns_label(cls: Any, v: str) -> str:
    """A Kubernetes namespace name (RFC 1123 label)."""
    if not _DNS_LABEL.fullmatch(v):
        raise ValueError(f"must be a DNS-1123 label (lowercase letters, digits, '-', max 63), got {v!r}")
    return v


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_PULL_SECRETS = 8


def check_secret_names(cls: Any, v: list[str]) -> list[str]:
    """Names of existing Secrets (DNS-1123 subdomains), each once, at most :data:`MAX_PULL_SECRETS`."""
    if len(v) > MAX_PULL_SECRETS:
        raise ValueError(f"at most {MAX_PULL_SECRETS} secrets, got {len(v)}")
    for name in v:
        if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
            raise ValueError(f"{name!r} is not a Secret name (DNS-1123 subdomain, max 253)")
    if len(set(v)) != len(v):
        raise ValueError(f"names a secret twice: {v}")
    return v


def check_cidr(cls: Any, v: list[str]) -> list[str]:
    """Every entry is an IPv4/IPv6 network in CIDR notation."""
    for cidr in v:
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            raise ValueError(f"must be CIDR blocks like 10.0.0.0/16, got {cidr!r}") from None
    return v


_SUFFIX = {
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?")


def quantity(v: str, kind: str) -> float:
    """Parse a Kubernetes quantity (``250m``, ``1``, ``512Mi``) to a number."""
    m = _QUANTITY.fullmatch(v)
    if not m or (kind == "memory" and m.group(2) == "m"):
        example = "250m or 1" if kind == "cpu" else "512Mi or 1Gi"
        raise ValueError(f"must be a Kubernetes {kind} quantity like {example}, got {v!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2) or ""]


_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "true or false",
    "dict": "a mapping",
    "model": "a mapping",
    "model_attributes": "a mapping",
    "list": "a list",
}


_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("more than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}


def _reason(err: Any) -> str:
    kind, got = err["type"], err.get("input")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind in _BOUNDS:  # a tunable's pydantic bound (worker/tunables.py)
        word, key = _BOUNDS[kind]
        return f"must be {word} {_number(err['ctx'][key])}, got {got!r}"
    if kind == "string_pattern_mismatch":
        return f"must match {err['ctx']['pattern']}, got {got!r}"
    if kind == "literal_error":
        return f"must be one of {err['ctx']['expected']}, got {got!r}"
    base = kind.split("_")[0] if not kind.startswith("model_attributes") else "model_attributes"
    if kind.endswith(("_type", "_parsing", "_from_float")) and base in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[base]}, got {got!r}"
    return f"{err['msg']}, got {got!r}"


def problems_from(exc: ValidationError) -> list[str]:
    """One ``"<dotted.key>: <reason>"`` line per problem, in input order."""
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "stack_rule":
            problems += [f"{key + '.' if key else ''}{sub}: {why}" for sub, why in err["ctx"]["problems"]]
        else:
            problems.append(f"{key or '<root>'}: {_reason(err)}")
    return problems


def check_weight(weight: int) -> int:
    """A canary weight is a percentage of concurrency slots: the one check of the stack config, the
    split and the release tool's ``--weight``/``--canary``."""
    if not 0 <= weight <= 100:
        raise ValueError(f"must be between 0 and 100, got {weight}")
    return weight


def effective_weight(weight: int, image: str | None) -> int:
    """The canary weight actually deployed: the stack's, or 0 while no canary image is set.

    The one rule of the program (``StackConfig.effective_canary_weight``) and of the release
    tool's view of a stack file (``ReleaseState.canary_weight``).
    """
    return weight if image else 0

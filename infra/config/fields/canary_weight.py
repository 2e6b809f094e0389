"""The canary weight: its range, and the weight actually deployed."""

from __future__ import annotations


def check_weight(weight: int) -> int:
    """A canary weight is a percentage of concurrency slots: the one check of the stack config, the
    split (:mod:`infra.manifests.scaling.canary`) and the release tool's ``--weight``/``--canary``."""
    if not 0 <= weight <= 100:
        raise ValueError(f"must be between 0 and 100, got {weight}")
    return weight


def effective_weight(weight: int, image: str | None) -> int:
    """The canary weight actually deployed: the stack's, or 0 while no canary image is set.

    The one rule of the program (``StackConfig.effective_canary_weight``) and of the release
    tool's view of a stack file (``ReleaseState.canary_weight``).
    """
    return weight if image else 0

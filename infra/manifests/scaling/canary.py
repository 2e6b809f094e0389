"""Canary split math: a weight (percent) becomes a replica split and HPA bounds per track.

Queue workers take no traffic that a router could split, so the weight is a
ratio of concurrency slots. Both tracks run the same per-pod concurrency, so
the slot share equals the pod share. The split is exact where the replica
count allows and best effort otherwise, with two guarantees: a weight above 0
never gives the canary 0 pods, and a weight below 100 never gives stable 0
pods (at one replica that means one pod each).
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.fields.canary_weight import check_weight


@dataclass(frozen=True)
class Split:
    """Pods per track for one total."""

    stable: int
    canary: int

    @property
    def total(self) -> int:
        """Pods across both tracks."""
        return self.stable + self.canary

    @property
    def canary_percent(self) -> float:
        """The canary's actual share of concurrency slots, in percent."""
        return 100.0 * self.canary / self.total if self.total else 0.0


@dataclass(frozen=True)
class TrackBounds:
    """HPA bounds of one track (``min`` may be 0: the track is not deployed)."""

    min: int
    max: int


@dataclass(frozen=True)
class Plan:
    """The whole split: initial pods and the HPA bounds of each track."""

    weight: int
    minimum: Split
    maximum: Split

    def bounds(self, track: str) -> TrackBounds:
        """HPA min/max for ``track`` ("stable" or "canary")."""
        return TrackBounds(getattr(self.minimum, track), getattr(self.maximum, track))


def split(total: int, weight: int) -> Split:
    """Split ``total`` pods so the canary gets ``weight`` percent (see the module docstring)."""
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    check_weight(weight)
    if weight == 0:
        return Split(stable=total, canary=0)
    if weight == 100:
        return Split(stable=0, canary=total)
    canary = max(1, (total * weight + 50) // 100)  # round half up, at least one pod
    if total == 1:
        return Split(stable=1, canary=1)
    canary = min(canary, total - 1)  # keep at least one stable pod
    return Split(stable=total - canary, canary=canary)


def plan(replicas_min: int, replicas_max: int, weight: int) -> Plan:
    """Split both HPA bounds; each track's max stays >= its min because split is monotonic."""
    return Plan(weight=weight, minimum=split(replicas_min, weight), maximum=split(replicas_max, weight))

"""What ``python -m infra verify`` looks at (:class:`Target`) and what each check reports (:class:`Row`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from infra.config.sections.cluster_target import ClusterTarget

Status = Literal["ok", "failed", "not run"]


@dataclass(frozen=True)
class Row:
    """One check's result: ``status`` is ``ok``, ``failed`` or ``not run`` (a check it needs failed)."""

    check: str
    status: Status
    detail: str

    @property
    def ok(self) -> bool:
        """Whether the check ran and passed."""
        return self.status == "ok"

    def as_json(self) -> dict[str, str]:
        """The row as ``--json`` prints it (docs/verify.md)."""
        return asdict(self)


@dataclass
class Target:
    """What the checks look at, and what earlier checks found for later ones."""

    stack: str
    root: Path
    api: str
    prometheus: str
    timeout: float
    outputs: dict[str, Any] = field(default_factory=dict)
    token: str = ""
    #: The stack's ``cluster`` section once ``cluster`` passed (None: the ambient kubeconfig).
    cluster: ClusterTarget | None = None
    #: Finished-job totals per track before the dry run (``targets`` records them).
    baseline: dict[str, float] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The API's ``Authorization`` header."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

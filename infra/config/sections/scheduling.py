"""The stack config's ``scheduling`` section: which nodes take the stack's pods.

``nodeSelector`` and ``tolerations`` go on every pod the stack declares (both worker tracks, the
job API and the DLQ sweep), so a stack can ask for a node pool or a tainted node of its own, such
as the local cluster's real node (``mobius.dev/node: real`` and a toleration of the
``mobius.dev/real-node`` taint, docs/real-node.md). Both are empty by default: any node.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from infra.config.base_model import Model, check_range, cross_field
from infra.config.fields.labels import check_label_key, check_label_value, check_labels

#: At most this many tolerations: a stack needs a few; the bound keeps a pod spec small.
MAX_TOLERATIONS = 16


class Toleration(Model):
    """One pod toleration, as Kubernetes spells it (``operator: Exists`` matches any value)."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None

    _seconds = field_validator("toleration_seconds")(check_range(0, 7 * 24 * 3600))

    @field_validator("key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        return None if v is None else check_label_key(v)

    @field_validator("value")
    @classmethod
    def _value(cls, v: str | None) -> str | None:
        return None if v is None else check_label_value(v)

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value is not None:
            raise cross_field(("value", "must be unset when operator is Exists"))
        if self.operator == "Equal" and self.key is None:
            raise cross_field(("key", "is required when operator is Equal"))
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise cross_field(("tolerationSeconds", "applies only to effect NoExecute"))
        return self

    def manifest(self) -> dict[str, Any]:
        """The toleration as the pod spec takes it (unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class Scheduling(Model):
    """Node selector and tolerations of every pod of the stack."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=MAX_TOLERATIONS)

    @field_validator("node_selector")
    @classmethod
    def _selector(cls, v: dict[str, str]) -> dict[str, str]:
        return check_labels(v)

    def pod_fields(self) -> dict[str, Any]:
        """``nodeSelector`` and ``tolerations`` for a pod spec; neither when unset."""
        fields: dict[str, Any] = {}
        if self.node_selector:
            fields["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            fields["tolerations"] = [t.manifest() for t in self.tolerations]
        return fields

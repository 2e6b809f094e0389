"""The worker's pods in the stack config: how many (``replicas``), how big (``resources``), and the
``canary`` track's image and weight."""

from __future__ import annotations

from pydantic import field_validator, model_validator

from infra.config.base_model import Model, check_range, cross_field
from infra.config.fields.canary_weight import check_weight
from infra.config.fields.image_refs import validate_image_ref
from infra.config.fields.quantities import quantity


class Replicas(Model):
    """Total worker pods across both tracks; the HPA moves between these."""

    min: int = 2
    max: int = 6

    _min = field_validator("min")(check_range(1, 100))
    _max = field_validator("max")(check_range(1, 200))

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.max < self.min:
            raise cross_field(("max", f"must be >= replicas.min ({self.min}), got {self.max}"))
        return self


class CpuMemory(Model):
    """A CPU and a memory quantity (Kubernetes notation: ``250m``, ``512Mi``)."""

    cpu: str
    memory: str

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: str) -> str:
        quantity(v, "cpu")
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        quantity(v, "memory")
        return v


class Resources(Model):
    """Requests and limits for the worker container; both are always set."""

    requests: CpuMemory = CpuMemory(cpu="250m", memory="256Mi")
    limits: CpuMemory = CpuMemory(cpu="1", memory="512Mi")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        bad = [
            (f"requests.{k}", f"must be <= limits.{k} ({lim}), got {req}")
            for k, req, lim in (
                ("cpu", self.requests.cpu, self.limits.cpu),
                ("memory", self.requests.memory, self.limits.memory),
            )
            if quantity(req, k) > quantity(lim, k)
        ]
        if bad:
            raise cross_field(*bad)
        return self


class Canary(Model):
    """The canary track: ``weight`` percent of concurrency slots run ``image``."""

    weight: int = 0
    image: str | None = None

    @field_validator("weight")
    @classmethod
    def _weight(cls, v: int) -> int:
        return check_weight(v)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        return None if v is None else validate_image_ref(v)

    @model_validator(mode="after")
    def _image_when_weighted(self) -> Canary:
        if self.weight > 0 and self.image is None:
            raise cross_field(("image", f"required when canary.weight > 0 (weight is {self.weight})"))
        return self

"""The workload's models: arrivals, task types (bundles, patience, roles, data), the mix."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from kossim.config.base import PRIORITY_MAX, Name, Strict, unique
from kossim.config.locks import LockNeed
from kossim.config.roles import DataSpec
from kossim.dists import Distribution, Exponential
from kossim.errors import FieldError

__all__ = ["Arrivals", "Bundle", "TaskType", "Workload"]


class Arrivals(Strict):
    process: Literal["poisson", "renewal"] = "poisson"
    rate: float | None = Field(default=None, gt=0)
    interarrival: Distribution | None = None

    @model_validator(mode="after")
    def _complete(self) -> Arrivals:
        if self.process == "poisson" and self.rate is None:
            raise FieldError("poisson arrivals need 'rate'", "rate")
        if self.process == "poisson" and self.interarrival is not None:
            raise FieldError("poisson arrivals take 'rate', not 'interarrival'", "interarrival")
        if self.process == "renewal" and self.interarrival is None:
            raise FieldError("renewal arrivals need 'interarrival'", "interarrival")
        if self.process == "renewal" and self.rate is not None:
            raise FieldError("renewal arrivals take 'interarrival', not 'rate'", "rate")
        mean = self.mean_interarrival()
        if mean == 0:
            raise FieldError(
                "this inter-arrival time is always 0, so arrivals would never let simulated "
                "time advance; its mean must be positive",
                "interarrival",
            )
        if not math.isfinite(mean):
            raise FieldError("so small that the mean inter-arrival time overflows", "rate")
        return self

    def interarrival_dist(self) -> Distribution:
        """Time between arrivals: exponential for Poisson, else the given distribution."""
        if self.rate is not None:
            return Exponential(dist="exponential", mean=1.0 / self.rate)
        assert self.interarrival is not None
        return self.interarrival

    def mean_interarrival(self) -> float:
        return self.interarrival_dist().mean_value()


class Bundle(Strict):
    """A task type whose every arrival is ``k`` linked subtasks with a shared completion rule.

    ``gang``: the k start together on k distinct agents (a coordinator that assembles
    gangs reserves them), and the bundle completes when all finish; ``independent``:
    they run separately and the bundle completes when all finish; ``quorum``: it
    completes when ``m`` of the k finish, and the rest are cancelled.
    """

    k: int = Field(ge=2, le=1000, description="subtasks per bundle")
    mode: Literal["gang", "independent", "quorum"] = "independent"
    m: int | None = Field(default=None, ge=1, description="quorum: subtasks needed")

    @model_validator(mode="after")
    def _quorum(self) -> Bundle:
        if self.mode == "quorum":
            if self.m is None:
                raise FieldError("a quorum bundle needs m (subtasks needed)", "m")
            if self.m > self.k:
                raise FieldError(f"must be at most k ({self.k})", "m", got=self.m)
        elif self.m is not None:
            raise FieldError(f"m is for mode quorum only (mode is {self.mode!r})", "m", got=self.m)
        return self

    @property
    def need(self) -> int:
        """Subtasks that must finish for the bundle to complete."""
        return self.m if self.m is not None else self.k


class TaskType(Strict):
    type: Name
    share: float = Field(default=1.0, gt=0)
    work: Distribution
    priority: int = Field(
        default=0, ge=0, le=PRIORITY_MAX, description="tier; lower is more urgent"
    )
    deadline: Distribution | None = Field(
        default=None, description="relative deadline, drawn at arrival"
    )
    skills: list[str] = Field(default_factory=list, description="required skills")
    criticality: Literal["low", "high"] = Field(
        default="high",
        description="what a bad result costs; trust-gated routing gives unproven agents only "
        "'low' tasks (unmarked work is assumed to matter)",
    )
    bundle: Bundle | None = Field(
        default=None, description="each arrival is k linked subtasks (gang, independent, quorum)"
    )
    patience: Distribution | None = Field(
        default=None,
        description="reneging: a task not started this long after its arrival abandons "
        "(drawn at arrival on the stream 'patience:<type>'); None: waits for ever",
    )

    role: Name | None = Field(default=None, description="the role an agent must hold")
    affinity: list[Name] = Field(
        default_factory=list, description="agent groups or nodes this type prefers"
    )
    data: DataSpec | None = Field(default=None, description="where the task's input lives")
    locks: list[LockNeed] = Field(
        default_factory=list, description="resources a task locks before it starts"
    )

    @model_validator(mode="after")
    def _patient_singles(self) -> TaskType:
        if self.patience is not None and self.bundle is not None:
            raise FieldError(
                "a bundle's subtasks cannot renege (its family decides its ending); "
                "drop 'patience' or make the type a single task",
                "patience",
            )
        return self


class Workload(Strict):
    arrivals: Arrivals
    tasks: list[TaskType] = Field(min_length=1)

    @field_validator("tasks")
    @classmethod
    def _unique_types(cls, v: list[TaskType]) -> list[TaskType]:
        unique([t.type for t in v], "task type", "type")
        if not math.isfinite(sum(t.share for t in v)):
            raise FieldError(
                "the shares add up to more than the largest float; shares are relative "
                "weights, so scale them down"
            )
        return v

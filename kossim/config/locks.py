"""The models of shared resources, the locks task types take on them, and agent pauses.

``resources:`` names shared resources (a store, a file, a row range), each
living on a node with its lock service (default: the coordinator's node). A
task type's ``locks:`` lists the resources it locks, ``exclusive`` (the task
writes the resource when it ends) or ``shared`` (it only reads); the short form
is the resource's name alone (exclusive). An agent group's ``pause:`` is a
physics of process pauses (a garbage-collection stall, a VM migration): every
so often the agent stops for a while, neither working nor sending nor handling
messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from kossim.config.base import COORDINATOR, Name, Strict, unique
from kossim.config.problems import did_you_mean
from kossim.dists import Distribution
from kossim.errors import FieldError

if TYPE_CHECKING:
    from kossim.config.models import Experiment, Scenario

__all__ = ["LockNeed", "Pause", "Resource", "check_locks", "check_resources"]


class Resource(Strict):
    """A shared resource and, on the same node, its lock service."""

    name: Name
    node: Name | None = Field(
        default=None,
        description="where the resource and its lock service live; default: the coordinator's node",
    )


class LockNeed(Strict):
    """A lock a task of the type holds from before it starts until its write is accepted."""

    resource: Name
    mode: Literal["exclusive", "shared"] = Field(
        default="exclusive",
        description="exclusive: one holder, which writes the resource at the end; shared: "
        "many readers at once, no write",
    )

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"resource": data} if isinstance(data, str) else data


class Pause(Strict):
    """Process pauses: after each ``every`` of running the agent stalls for ``length``
    (drawn on the streams ``pause:<agent>:every`` and ``pause:<agent>:length``)."""

    every: Distribution
    length: Distribution

    @model_validator(mode="after")
    def _clock_advances(self) -> Pause:
        if self.every.mean_value() == 0 and self.length.mean_value() == 0:
            raise FieldError(
                "every and length are both always 0, so the pause clock would never let "
                "simulated time advance; give one of them a positive mean",
                "every",
            )
        return self


def check_resources(sc: Scenario, node_names: list[str]) -> None:
    """Resources have unique names on known nodes; task types lock declared resources,
    each at most once."""
    names = [r.name for r in sc.resources]
    unique(names, "resource", "name", "resources")
    for index, r in enumerate(sc.resources):
        if r.node is not None and r.node not in node_names:
            raise FieldError(
                f"resource {r.name!r} is on unknown node {r.node!r} (nodes: "
                f"{', '.join([COORDINATOR, *node_names])}){did_you_mean(r.node, node_names)}",
                "resources",
                index,
                "node",
            )
    for index, t in enumerate(sc.workload.tasks):
        seen: set[str] = set()
        for j, need in enumerate(t.locks):
            at = ("workload", "tasks", index, "locks", j, "resource")
            if need.resource not in names:
                raise FieldError(
                    f"task type {t.type!r} locks unknown resource {need.resource!r} "
                    f"(resources: {', '.join(names) or 'none declared'})"
                    f"{did_you_mean(need.resource, names)}",
                    *at,
                )
            if need.resource in seen:
                raise FieldError(f"resource {need.resource!r} is locked twice", *at)
            seen.add(need.resource)


def check_locks(exp: Experiment) -> None:
    """Task types that lock resources need, in every policy, a lock service (``locks``)
    and an agent behaviour that takes locks (``takes_locks``)."""
    locked = [t.type for t in exp.scenario.workload.tasks if t.locks]
    if not locked:
        return
    from kossim.registry import available, resolve

    for index, p in enumerate(exp.policies):
        service = resolve("locks", p.locks).cls
        if not getattr(service, "grants", False):
            able = sorted(i for i, c in available("locks").items() if getattr(c, "grants", False))
            raise FieldError(
                f"task type {locked[0]!r} locks resources, but locks {service.id!r} runs no "
                f"lock service; use one of: {', '.join(able)}",
                "policies",
                index,
                "locks",
                got=p.locks,
            )
        agent = resolve("agent", p.agent).cls
        if not getattr(agent, "takes_locks", False):
            able = sorted(i for i, c in available("agent").items() if getattr(c, "takes_locks", 0))
            raise FieldError(
                f"task type {locked[0]!r} locks resources, which agent {agent.id!r} cannot "
                f"take; agents that do: {', '.join(able)}",
                "policies",
                index,
                "agent",
                got=p.agent,
            )

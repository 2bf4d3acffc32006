"""The coordinator's failure clock and the load-time checks of coordinator failover.

``failures.coordinator: {up: <dist>, down: <dist>}`` is physics: the acting
coordinator's process crashes after each ``up`` time and its host restarts it
after the ``down`` time, on its own named streams (the same schedule for every
policy). A policy's ``standby`` component (``none``, ``hot``, ``cold``) says
what else stands ready; only the coordinators and agents that can hand over
their state by messages may fail over, and any other combination fails at load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import model_validator

from kossim.config.base import Strict
from kossim.dists import Distribution
from kossim.errors import FieldError

if TYPE_CHECKING:
    from kossim.config.models import Experiment, PolicySpec

__all__ = [
    "FAILOVER_AGENTS",
    "FAILOVER_COORDINATORS",
    "CoordinatorFailure",
    "check_failover",
    "failover_wanted",
    "kills_coordinator",
    "reserve_groups",
    "standby_nodes",
]

FAILOVER_COORDINATORS = ("queueing",)
"""Coordinators whose whole state is a waiting queue and views the agents can rebuild."""
FAILOVER_AGENTS = ("worker",)
"""Agents that learn a new leader by message and report their state to it."""


class CoordinatorFailure(Strict):
    """An up/down clock of the acting coordinator: it crashes after ``up``, losing its
    memory; its host restarts it ``down`` later (as a standby when the policy has any)."""

    up: Distribution
    down: Distribution

    @model_validator(mode="after")
    def _clock_advances(self) -> CoordinatorFailure:
        if self.up.mean_value() == 0 and self.down.mean_value() == 0:
            raise FieldError(
                "up and down times are both always 0, so the coordinator's failure clock "
                "would never let simulated time advance; give one of them a positive mean",
                "down",
            )
        return self


def standby_count(policy: PolicySpec) -> int:
    """How many standby coordinators ``policy`` keeps (0 for ``none``)."""
    from kossim.registry import resolve

    spec = resolve("standby", policy.standby)
    return int(getattr(spec.params, "count", 0))


def standby_nodes(policy: PolicySpec) -> list[str]:
    """The nodes of ``policy``'s standby coordinators: one each, ``coordinator-standby-<i>``."""
    return [f"coordinator-standby-{i}" for i in range(1, standby_count(policy) + 1)]


def reserve_groups(policy: PolicySpec) -> list[str]:
    """The agent groups ``policy`` holds in reserve (standby agents)."""
    from kossim.registry import resolve

    return list(getattr(resolve("standby", policy.standby).params, "agents", []))


def failover_wanted(exp: Experiment, policy: PolicySpec) -> bool:
    """Whether a run of ``policy`` needs the failover machinery: the coordinator can fail,
    or the policy keeps standby coordinators or agents."""
    return (
        exp.scenario.failures.coordinator is not None
        or kills_coordinator(exp)
        or standby_count(policy) > 0
        or bool(reserve_groups(policy))
    )


def kills_coordinator(exp: Experiment) -> bool:
    """Whether the scenario's timeline crashes the coordinator (``kill_coordinator``)."""
    from kossim.config.timeline import timeline_events

    return any(e.kind == "kill_coordinator" for e in timeline_events(exp.scenario.timeline))


def check_failover(exp: Experiment) -> None:
    """Coordinator failover needs a coordinator and agents that can rebuild the view by
    messages; standby nodes must not clash with agents' nodes."""
    from kossim.registry import available, resolve

    nodes = {g.node or f"{g.group}-{i}" for g in exp.scenario.agents for i in range(g.count)}
    for index, p in enumerate(exp.policies):
        if not failover_wanted(exp, p):
            continue
        why = (
            "the coordinator can fail (failures.coordinator)"
            if exp.scenario.failures.coordinator is not None
            else "the timeline kills the coordinator (kill_coordinator)"
            if kills_coordinator(exp)
            else f"policy {p.name!r} keeps standby coordinators"
        )
        for kind, allowed in (("coordinator", FAILOVER_COORDINATORS), ("agent", FAILOVER_AGENTS)):
            cls = resolve(kind, getattr(p, kind)).cls
            if cls.id not in allowed:
                others = sorted(set(available(kind)) - set(allowed))
                raise FieldError(
                    f"{why}, but {kind} {cls.id!r} cannot fail over: its state is not one a "
                    f"successor rebuilds from the agents' reports. {kind.capitalize()}s that "
                    f"can: {', '.join(allowed)} (not: {', '.join(others)})",
                    "policies",
                    index,
                    kind,
                    got=getattr(p, kind),
                )
        _check_reserve(exp, p, index)
        for node in standby_nodes(p):
            if node in nodes:
                raise FieldError(
                    f"node {node!r} is the standby coordinator's; rename the agent group "
                    "whose agents would take that node",
                    "policies",
                    index,
                    "standby",
                )


def _check_reserve(exp: Experiment, policy: PolicySpec, index: int) -> None:
    """Standby agent groups and the groups they cover are groups of the scenario."""
    from kossim.config.problems import did_you_mean
    from kossim.registry import resolve

    params = resolve("standby", policy.standby).params
    groups = [g.group for g in exp.scenario.agents]
    for field in ("agents", "covers"):
        for name in getattr(params, field, None) or []:
            if name not in groups:
                raise FieldError(
                    f"standby {field}: unknown agent group {name!r}; groups: "
                    f"{', '.join(groups)}{did_you_mean(name, groups)}",
                    "policies",
                    index,
                    "standby",
                    field,
                )
    reserve = set(getattr(params, "agents", []))
    if reserve and reserve >= set(groups):
        raise FieldError(
            "every agent group is held in reserve: no agent would ever get work",
            "policies",
            index,
            "standby",
            "agents",
        )

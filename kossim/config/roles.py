"""The YAML of roles, learning, affinity and data locality (checked with the scenario).

A scenario-level ``roles:`` section names roles: each a set of skills its
holders have (at proficiency 1 unless their group says otherwise), free-text
duties, and an optional ``fallback``: a substitute role whose holders may take
a task needing this role, at a proficiency penalty, when no holder of the role
is available. Agent groups list the roles they hold and may learn
(``learning``); task types may require a role, prefer agents (``affinity``)
and keep their input on a node (``data``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

from kossim.config.problems import did_you_mean
from kossim.errors import FieldError

if TYPE_CHECKING:
    from kossim.config.models import Scenario

__all__ = ["DataSpec", "Fallback", "Learning", "RoleSpec", "check_roles", "role_skills"]

RoleName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$", max_length=80)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Fallback(_Strict):
    """Who may stand in for a role, and how much slower they are at it."""

    role: RoleName = Field(description="the substitute role")
    penalty: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="proficiency multiplier of a substitute on a task needing the role",
    )


class RoleSpec(_Strict):
    skills: list[str] = Field(
        default_factory=list, description="skills a holder has (proficiency 1 unless set)"
    )
    duties: list[str] = Field(default_factory=list, description="what the role is for (text)")
    fallback: Fallback | None = Field(
        default=None, description="substitute role when no holder of this one is available"
    )


class Learning(_Strict):
    """Proficiency on a task type rises with the tasks of that type completed:
    ``p(n) = p0 + (cap - p0)(1 - exp(-n / tau))`` (never below ``p0``)."""

    cap: float = Field(gt=0, description="the proficiency experience tends to")
    tau: float = Field(gt=0, description="completed tasks of a type per e-fold of the gap")


class DataSpec(_Strict):
    """A task's input lives on ``node``: running elsewhere first costs a transfer of
    ``size`` over the path (size / network.bandwidth + the path's mean latency)."""

    node: RoleName
    size: float = Field(default=0.0, ge=0, description="input size (network.bandwidth units)")


def role_skills(roles: dict[str, RoleSpec], held: list[str]) -> set[str]:
    """The skills the roles in ``held`` grant."""
    return {s for r in held if r in roles for s in roles[r].skills}


def _known(name: str, allowed: list[str], what: str, *at: str | int) -> None:
    if name not in allowed:
        raise FieldError(
            f"unknown {what} {name!r}; allowed: {', '.join(allowed) or 'none declared'}"
            f"{did_you_mean(name, allowed)}",
            *at,
        )


def _no_mark(skills: list[str], *at: str | int) -> None:
    for s in skills:
        if s.startswith("role:"):
            raise FieldError("skill names starting 'role:' are reserved for roles", *at, got=s)


def check_roles(sc: Scenario) -> None:
    """Every role, substitute, affinity and data node named is known; a task needing a
    role has some holder (or substitute) of it with the task's skills."""
    roles = sorted(sc.roles)
    for name, spec in sc.roles.items():
        _no_mark(spec.skills, "roles", name, "skills")
        if spec.fallback is not None:
            _known(spec.fallback.role, roles, "role", "roles", name, "fallback", "role")
            if spec.fallback.role == name:
                raise FieldError("a role cannot stand in for itself", "roles", name, "fallback")
    for index, g in enumerate(sc.agents):
        for j, r in enumerate(g.roles):
            _known(r, roles, "role", "agents", index, "roles", j)
        _no_mark(list(g.skills), "agents", index, "skills")
    groups = [g.group for g in sc.agents]
    nodes = [n.name for n in sc.nodes]
    own = [f"{g.group}-{i}" for g in sc.agents if g.node is None for i in range(g.count)]
    for index, t in enumerate(sc.workload.tasks):
        _no_mark(t.skills, "workload", "tasks", index, "skills")
        for j, name in enumerate(t.affinity):
            _known(name, groups + nodes, "agent group or node", "workload", "tasks", index,
                   "affinity", j)  # fmt: skip
        if t.data is not None and t.data.node not in nodes and t.data.node not in own:
            _known(t.data.node, nodes, "node", "workload", "tasks", index, "data", "node")
        if t.role is None:
            continue
        _known(t.role, roles, "role", "workload", "tasks", index, "role")
        fb = sc.roles[t.role].fallback
        able = {t.role} | ({fb.role} if fb else set())
        need = set(t.skills)
        if not any(
            able & set(g.roles) and need <= set(g.skills) | role_skills(sc.roles, g.roles)
            for g in sc.agents
        ):
            raise FieldError(
                f"task type {t.type!r} needs role {t.role!r}"
                f"{' (or ' + fb.role + ')' if fb else ''} and skills {sorted(need)}, "
                "which no agent group has together",
                "workload",
                "tasks",
                index,
                "role",
            )

"""Checks across a policy's components and the scenario: parts that cannot work together
fail at load, at the field, saying what would work instead of failing every run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kossim.errors import FieldError

if TYPE_CHECKING:
    from kossim.config.models import Experiment

__all__ = ["check_gangs", "check_partners", "check_speculation"]


def check_gangs(exp: Experiment) -> None:
    """A gang bundle needs ``k`` agents able to run it and a coordinator that assembles
    gangs (all or none start)."""
    tasks = exp.scenario.workload.tasks
    gangs = [t.type for t in tasks if t.bundle and t.bundle.mode == "gang"]
    if not gangs:
        return
    from kossim.registry import resolve

    for index, t in enumerate(tasks):
        if t.bundle is None or t.bundle.mode != "gang":
            continue
        able = sum(
            g.count
            for g in exp.scenario.agents
            if all(g.skills.get(s, 0.0) > 0 for s in t.skills)
            and (t.role is None or t.role in g.roles)
        )
        if t.bundle.k > able:
            raise FieldError(
                f"a gang of {t.bundle.k} needs {t.bundle.k} distinct agents with the "
                f"type's skills{' and role' if t.role else ''}; the fleet has {able}",
                "scenario",
                "workload",
                "tasks",
                index,
                "bundle",
                "k",
                got=t.bundle.k,
            )
    for index, p in enumerate(exp.policies):
        cls = resolve("coordinator", p.coordinator).cls
        if not getattr(cls, "assembles_gangs", False):
            raise FieldError(
                f"task type {gangs[0]!r} is a gang bundle, which coordinator "
                f"{cls.id!r} cannot start all at once; use coordinator 'bundles'",
                "policies",
                index,
                "coordinator",
                got=p.coordinator,
            )


def check_partners(exp: Experiment) -> None:
    """An agent behaviour that tells its coordinator of things (``tells_coordinator``:
    message kinds) needs a coordinator with a handler for each."""
    from kossim.registry import available, resolve

    for index, p in enumerate(exp.policies):
        agent = resolve("agent", p.agent).cls
        tells = tuple(getattr(agent, "tells_coordinator", ()))
        if not tells:
            continue
        coordinator = resolve("coordinator", p.coordinator).cls
        missing = [k for k in tells if not hasattr(coordinator, f"on_{k}")]
        if missing:
            able = sorted(
                cid
                for cid, cls in available("coordinator").items()
                if all(hasattr(cls, f"on_{k}") for k in tells)
            )
            raise FieldError(
                f"agent {agent.id!r} tells its coordinator {', '.join(tells)}, which "
                f"coordinator {coordinator.id!r} does not handle ({', '.join(missing)}); "
                f"coordinators that do: {', '.join(able)}",
                "policies",
                index,
                "agent",
                got=p.agent,
            )


def check_speculation(exp: Experiment) -> None:
    """``speculation`` needs a coordinator that launches backup copies (``speculates``:
    it handles the detector's ``straggler`` flags) and agents that report progress
    (``on_watch``)."""
    from kossim.registry import available, resolve

    for index, p in enumerate(exp.policies):
        if p.speculation is None:
            continue
        coordinator = resolve("coordinator", p.coordinator).cls
        if not getattr(coordinator, "speculates", False):
            able = sorted(
                cid
                for cid, cls in available("coordinator").items()
                if getattr(cls, "speculates", False)
            )
            raise FieldError(
                f"coordinator {coordinator.id!r} cannot launch backup copies of stragglers; "
                f"speculation needs one of: {', '.join(able)}",
                "policies",
                index,
                "speculation",
                got=p.speculation,
            )
        agent = resolve("agent", p.agent).cls
        if not hasattr(agent, "on_watch"):
            raise FieldError(
                f"agent {agent.id!r} does not report progress (no on_watch), which "
                "speculation needs; use agent 'worker'",
                "policies",
                index,
                "speculation",
                got=p.speculation,
            )

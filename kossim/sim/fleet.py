"""The fleet: every agent of a scenario, built from the class its group needs.

The plain :class:`~kossim.sim.agent.Agent` unless the group needs more physics,
mixed in by class factories (each cached per base class): roles, learning and
data transfers (:class:`~kossim.sim.roles.RoleAgent`), endings deferred until
locked writes are accepted (:func:`~kossim.sim.locks.deferring`), process
pauses (:func:`~kossim.sim.pauses.pausing`), changes of pace
(:func:`~kossim.sim.slowdown.slowable`) and results that can be bad
(:func:`~kossim.sim.results.fallible`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kossim.sim.agent import Agent, AgentState
from kossim.sim.locks import deferring
from kossim.sim.pauses import pausing
from kossim.sim.results import fallible
from kossim.sim.roles import RoleAgent, agent_skills
from kossim.sim.slowdown import is_slowable, slowable

if TYPE_CHECKING:
    from kossim.sim.world import World

__all__ = ["build_fleet"]


def build_fleet(world: World) -> None:
    """Build every agent of the scenario into ``world`` (its profile, then the agent from
    the class its group needs), in group order."""
    sc = world.exp.scenario
    locked = any(t.locks for t in sc.workload.tasks)
    for g in sc.agents:
        skills = agent_skills(g, sc) if world.role_physics else dict(g.skills)
        slow = is_slowable(g, sc)  # once per group: it reads every agent name of the group
        for i in range(g.count):
            name = f"{g.group}-{i}"
            profile = AgentState(
                len(world.agents),
                name,
                g.group,
                g.speed,
                g.capacity,
                dict(skills),
                g.trust,
                g.queue_limit,
            )
            world.profiles.append(profile)
            node = g.node or name
            # The plain agent unless the group needs more physics: roles, learning and
            # data transfers; results that can be bad.
            cls: type[Agent] = Agent if world.role_physics is None else RoleAgent
            more: tuple[Any, ...] = () if world.role_physics is None else (g,)
            if locked:  # tasks that end when their writes are accepted
                cls = deferring(cls)
            if g.pause is not None:
                cls = pausing(cls)
            if slow:
                cls = slowable(cls)
            if g.bad_results > 0:
                cls, more = fallible(cls), (*more, g.bad_results)
            world.agents.append(cls(world, profile, node, *more))

"""Slow agents: physics of a service rate that changes, for the whole run or in episodes.

An agent of a group with ``slowdown`` serves ``factor`` times slower while slowed:
every rate it serves at is divided by ``factor``. Remaining work is kept in work
units, so a change of pace mid-task first brings the running tasks' remaining work
up to date at the old rate, then reschedules their completions at the new one: a
task in progress is pro-rated exactly.

Which agents are slow is drawn per seed on the stream ``slowdown:<group>`` (the same
agents under every policy); each agent's factors and episodes come from its own
streams ``slowdown:<agent>:factor|every|length``. Only agents of groups with a
``slowdown`` are of a :func:`slowable` class, so a fleet without one pays nothing.

:meth:`Paced.slow` and :meth:`Paced.restore` are the verbs a scheduled event (a
timeline's ``slow``) calls on a slowable agent; :func:`set_pace` also logs the change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simpy.events import Timeout

from kossim.dists import lean_sampler
from kossim.sim.agent import Agent
from kossim.sim.streams import stream
from kossim.sim.task import RUNNING, Task

if TYPE_CHECKING:
    from kossim.config.models import AgentGroup, Scenario
    from kossim.config.slowdown import Slowdown
    from kossim.sim.world import World

__all__ = ["Paced", "is_slowable", "set_pace", "slowable", "start_slowdowns"]


def is_slowable(group: AgentGroup, scenario: Scenario) -> bool:
    """Whether the agents of ``group`` can change pace (are built :func:`slowable`): the
    group has a ``slowdown``, or a ``slow`` event of the timeline names one of them."""
    if group.slowdown is not None:
        return True
    from kossim.config.places import agent_names, names_to_nodes
    from kossim.config.timeline import timeline_events

    mine = {f"{group.group}-{i}" for i in range(group.count)}
    hosts = {group.node} if group.node else mine
    for event in timeline_events(scenario.timeline):
        if event.kind == "slow" and (
            mine & set(agent_names(scenario, event.agents, ()))
            or hosts & names_to_nodes(scenario, event.nodes, ())
        ):
            return True
    return False


class Paced:
    """The verbs of a slowable agent (mixed into an agent class by :func:`slowable`)."""

    __slots__ = ()
    factor: float  # the current service time multiplier (1: normal)

    def slow(self, factor: float) -> None:
        """Serve ``factor`` times slower from now on (a factor below 1 counts as 1)."""
        self._pace(max(1.0, float(factor)))

    def restore(self) -> None:
        """Serve at the normal rate again."""
        self._pace(1.0)

    def _pace(self, factor: float) -> None:
        agent: Any = self
        old = agent.factor
        if factor == old:
            return
        agent.factor = factor
        if not agent.up:
            return  # suspended tasks start again through start(), at the new pace
        env = agent.world.env
        agent._refresh(env._now)  # the work done so far, at the old rate
        for t in agent.running:
            if t.ev is None or t.rate <= 0:
                continue  # not in service (a data transfer is not slowed)
            t.rate = t.rate * old / factor
            ev = t.ev = Timeout(env, t.remaining / t.rate, t)
            ev.callbacks.append(agent._done)


def slowable(base: type[Agent]) -> type[Agent]:
    """``base`` (an agent class) whose service rate is divided by ``factor`` while slowed."""
    got = _SLOWABLE.get(base)
    if got is not None:
        return got

    if hasattr(base, "rate_for"):  # the agent has a rate hook (roles, learning): slow it there

        class Slowable(Paced, base):  # type: ignore[valid-type,misc]
            __slots__ = ("factor",)

            def __init__(self, world: World, profile: Any, node: str, *more: Any) -> None:
                super().__init__(world, profile, node, *more)
                self.factor = 1.0

            def rate_for(self, task: Task) -> float:
                return float(super().rate_for(task)) / self.factor

    else:

        class Slowable(Paced, base):  # type: ignore[valid-type,misc,no-redef]
            __slots__ = ("factor",)

            def __init__(self, world: World, profile: Any, node: str, *more: Any) -> None:
                super().__init__(world, profile, node, *more)
                self.factor = 1.0

            def start(self, task: Task) -> None:
                super().start(task)
                factor = self.factor
                if factor != 1.0 and task.state == RUNNING and task.ev is not None:
                    # Rescheduled at the slow rate: the normal completion is superseded.
                    rate = task.rate = task.rate / factor
                    ev = task.ev = Timeout(self.world.env, task.remaining / rate, task)
                    ev.callbacks.append(self._done)

    Slowable.__name__ = Slowable.__qualname__ = f"Slowable{base.__name__}"
    _SLOWABLE[base] = Slowable
    return Slowable


_SLOWABLE: dict[type[Agent], type[Agent]] = {}


def start_slowdowns(world: World) -> None:
    """Slow the chosen agents of every group with a ``slowdown``: at once for the whole run,
    or by episodes (a process per agent)."""
    by_group: dict[str, list[Agent]] = {}
    for a in world.agents:
        by_group.setdefault(a.profile.group, []).append(a)
    for g in world.exp.scenario.agents:
        spec = g.slowdown
        if spec is None:
            continue
        members = by_group[g.group]
        n = round(spec.share * len(members))
        rng = stream(world.seed, f"slowdown:{g.group}")
        chosen = sorted(int(i) for i in rng.choice(len(members), size=n, replace=False))
        for i in chosen:
            agent = members[i]
            factor = lean_sampler(spec.factor, stream(world.seed, f"slowdown:{agent.name}:factor"))
            if spec.every is None:
                set_pace(world, agent, max(1.0, factor()), "for the whole run")
            else:
                world.env.process(_episodes(world, agent, spec, factor))


def _episodes(world: World, agent: Agent, spec: Slowdown, factor: Any) -> Any:
    assert spec.every is not None and spec.length is not None
    every = lean_sampler(spec.every, stream(world.seed, f"slowdown:{agent.name}:every"))
    length = lean_sampler(spec.length, stream(world.seed, f"slowdown:{agent.name}:length"))
    while True:
        yield world.env.timeout(every())
        span = length()
        set_pace(world, agent, factor(), f"for {span:.4g}")
        yield world.env.timeout(span)
        set_pace(world, agent, 1.0)


def set_pace(world: World, agent: Agent, factor: float, how_long: str = "") -> None:
    """Slow slowable ``agent`` by ``factor`` from now (1: its normal rate again), and log it
    (``slow`` or ``restore``, the reason ending with ``how_long``)."""
    if factor > 1.0:
        agent.slow(factor)  # type: ignore[attr-defined]
        got = agent.factor  # type: ignore[attr-defined]
        kind, reason = "slow", f"{agent.name} serves {got:.4g}x slower {how_long}".rstrip()
    else:
        agent.restore()  # type: ignore[attr-defined]
        kind, reason = "restore", f"{agent.name} serves at its normal rate again"
    log = world.kernel.log
    if log is not None:
        log.record(world.env._now, kind, agent.name, reason, None, {})

"""The built-in timeline kinds: what each event does to the world, and the registry.

:func:`event_kind` registers ``apply(run, event)`` for a kind whose model is in
:mod:`kossim.config.timeline` (``EVENT_MODELS``); ``apply`` acts on the world
(``run.world``, ``run.kernel``), logs with ``run.log`` and marks the report's
timelines with ``run.mark``, and returns what ends its period at ``until`` (a
callable), or ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kossim.config.places import agent_names, names_to_nodes, partition_sides
from kossim.config.timeline import (
    Heal,
    Inject,
    Kill,
    KillCoordinator,
    LinkChange,
    Partition,
    Repair,
    SetParam,
    Slow,
    Surge,
    with_value,
)
from kossim.dists import lean_sampler, sampler
from kossim.registry import resolve
from kossim.sim.streams import stream
from kossim.sim.task import Task

if TYPE_CHECKING:
    from kossim.sim.agent import Agent
    from kossim.sim.timeline import ScenarioEvents
    from kossim.sim.world import World

__all__ = ["KINDS", "event_kind", "shown"]

Apply = Callable[["ScenarioEvents", Any], "Callable[[], None] | None"]
KINDS: dict[str, Apply] = {}
"""Timeline kind -> its apply function."""


def event_kind(kind: str) -> Callable[[Apply], Apply]:
    """Register ``apply(run, event) -> end of its period | None`` for timeline ``kind``."""

    def register(apply: Apply) -> Apply:
        KINDS[kind] = apply
        return apply

    return register


def shown(sides: list[set[str]]) -> str:
    """Partition sides as text: ``a,b | c``."""
    return " | ".join(",".join(sorted(s)) for s in sides)


@event_kind("surge")
def _surge(run: ScenarioEvents, event: Surge) -> None:
    """Arrivals follow the rate schedule from the start (:func:`warp_arrivals`): log it."""
    run.mark(f"surge x{event.factor:g}", event, span=True)
    run.log(event, f"arrival rate x{event.factor:g}" + _until(event))
    if event.until is not None:
        run.ctx.after(event.until - event.at, "logged", (event, "arrival rate back"))


def _until(event: Any) -> str:
    until = getattr(event, "until", None)
    return f" until {until:g}" if until is not None else ""


@event_kind("inject")
def _inject(run: ScenarioEvents, event: Inject) -> None:
    world = run.world
    types = [t.name for t in world.task_types]
    tidx = types.index(event.type)
    draws = run._inject.get(tidx)
    if draws is None:  # their own streams: the regular arrivals draw what they always did
        spec = world.exp.scenario.workload.tasks[tidx]
        draw = sampler(spec.work, stream(world.seed, f"timeline:work:{event.type}"))
        dl = spec.deadline
        within = sampler(dl, stream(world.seed, f"timeline:deadline:{event.type}")) if dl else None
        draws = run._inject[tidx] = (draw, within)
    work, deadline = draws
    tt = world.task_types[tidx]
    run.mark(f"inject {event.n} {event.type}", event)
    run.log(event, f"{event.n} tasks of type {event.type} arrive")
    for _ in range(event.n):
        now = world.env._now
        n = world.arrived
        world.arrived = n + 1
        measured = n >= world._warmup_tasks and now >= world._warmup
        if measured:
            if world.measure_start is None:
                world._start_measuring()
            world.arrived_measured += 1
        at = now + deadline() if deadline is not None else float("inf")
        task = Task(n, tt.name, tidx, work(), tt.priority, at, tt.skills, now, measured)
        world.in_system += 1
        world._arrive(None, task)


def _targets(run: ScenarioEvents, event: Kill | Repair | Slow) -> list[Agent]:
    sc = run.world.exp.scenario
    names = set(agent_names(sc, event.agents, ()))
    nodes = names_to_nodes(sc, event.nodes, ())
    return [a for a in run.world.agents if a.name in names or a.node in nodes]


@event_kind("kill")
def _kill(run: ScenarioEvents, event: Kill) -> Callable[[], None]:
    agents = _targets(run, event)
    key = ("kill", tuple(a.index for a in agents), event.at)
    run.mark("kill " + ",".join([*event.agents, *event.nodes]), event, span=True, key=key)
    for a in agents:
        run.killed[a.index] = run.killed.get(a.index, 0) + 1
        a.fail()
    run.log(event, f"{', '.join(a.name for a in agents)} go down" + _until(event))
    _log_physics(run, "crash", agents, "timeline kill")

    def end() -> None:
        back = [a for a in agents if run.killed.get(a.index, 0) > 0]
        for a in back:
            run.killed[a.index] -= 1
            a.repair()
        _log_physics(run, "repair", back, "timeline kill ends")

    return end


@event_kind("repair")
def _repair(run: ScenarioEvents, event: Repair) -> None:
    agents = [a for a in _targets(run, event) if run.killed.get(a.index, 0) > 0]
    run.mark("repair " + ",".join([*event.agents, *event.nodes]), event)
    for a in agents:
        for _ in range(run.killed.pop(a.index)):
            a.repair()
    for key in [k for k in run.open_marks if k[0] == "kill"]:
        if all(run.killed.get(i, 0) == 0 for i in key[1]):
            run.close_mark(key)  # every agent of that kill is back
    run.log(event, f"repairs {', '.join(a.name for a in agents) or 'none (none killed)'}")
    _log_physics(run, "repair", agents, "timeline repair")


def _log_physics(run: ScenarioEvents, kind: str, agents: list[Agent], why: str) -> None:
    if run.ctx.tracing:
        for a in agents:
            why_now = f"{a.name} {kind}: {why} (failure {a.epoch}, up {a.up})"
            run.ctx.log(kind, why_now, agent=a.name)


@event_kind("partition")
def _partition(run: ScenarioEvents, event: Partition) -> Callable[[], None]:
    sides = partition_sides(run.world.exp.scenario, event.groups, ())
    key = ("timeline", event.name or id(event))
    why = run.cut(key, sides)
    run.partitions.add(key)
    run.mark(f"partition {event.name or ''}".strip(), event, span=True, key=key)
    run.log(event, why + _until(event))

    def end() -> None:
        run.heal(key)
        run.partitions.discard(key)

    return end


@event_kind("heal")
def _heal(run: ScenarioEvents, event: Heal) -> None:
    keys = [k for k in run.partitions if event.name is None or k[1] == event.name]
    for key in keys:
        run.heal(key)
        run.partitions.discard(key)
        run.close_mark(key)
    run.mark(f"heal {event.name or 'all'}", event)
    run.log(event, f"heals {len(keys)} partition(s)")


@event_kind("link")
def _link(run: ScenarioEvents, event: LinkChange) -> Callable[[], None]:
    kernel, net = run.kernel, run.kernel.net
    pairs = [(event.a, event.b), (event.b, event.a)]
    saved_loss = {p: kernel.link_loss.get(p) for p in pairs}
    saved_draw = {p: net._links.get(p) for p in pairs}
    if event.loss is not None:
        for p in pairs:
            kernel.link_loss[p] = event.loss
    if event.latency is not None:
        for a, b in pairs:  # a stream of its own: the link's usual draws resume after
            name = f"net:{a}>{b}:timeline:{event.at:g}"
            net._links[(a, b)] = lean_sampler(event.latency, stream(run.world.seed, name))
        net._paths.clear()
    what = [f"latency {event.latency.dist}" if event.latency else "", f"loss {event.loss}"]
    run.mark(f"link {event.a}-{event.b}", event, span=True)
    run.log(event, f"link {event.a}-{event.b}: {' '.join(w for w in what if w)}" + _until(event))

    def end() -> None:
        for p in pairs:
            if event.loss is not None:
                if saved_loss[p] is None:
                    kernel.link_loss.pop(p, None)
                else:
                    kernel.link_loss[p] = saved_loss[p]  # type: ignore[assignment]
            if event.latency is not None:
                if saved_draw[p] is None:
                    net._links.pop(p, None)
                else:
                    net._links[p] = saved_draw[p]
        net._paths.clear()

    return end


def _components(world: World, kind: str) -> list[Any]:
    if kind == "coordinator":
        return [world.coordinator]
    if kind == "detector":
        return [world.detector]
    if kind == "agent":
        return [a.behaviour for a in world.agents]
    return [world.component(kind)]


@event_kind("set")
def _set(run: ScenarioEvents, event: SetParam) -> None:
    world = run.world
    if event.policy is not None and event.policy != world.policy.name:
        run.log(event, f"not for this policy ({world.policy.name}); only {event.policy}")
        return
    ref = getattr(world.policy, event.component)
    cls = resolve(event.component, ref).cls
    if event.param not in cls.Params.model_fields:
        run.log(event, f"{event.component} {cls.id!r} has no parameter {event.param!r}: no change")
        return
    value = getattr(with_value(ref, event.param, event.value, cls), event.param)
    run.mark(f"set {event.component}.{event.param}={event.value}", event)
    for comp in _components(world, event.component):
        old = comp.params
        comp.params = old.model_copy(update={event.param: value})
        hook = getattr(comp, "on_params", None)
        if hook is not None:
            hook(old)
    run.log(event, f"{event.component} {cls.id!r}: {event.param} = {value!r}")


@event_kind("kill_coordinator")
def _kill_coordinator(run: ScenarioEvents, event: KillCoordinator) -> Callable[[], None] | None:
    """The leading coordinator crashes (:mod:`kossim.sim.failover` is in place: the config
    asks for it when the timeline kills the coordinator); restarted at ``until``."""
    failover = run.world.failover
    assert failover is not None, "a timeline that kills the coordinator sets up failover"
    run.mark("kill coordinator", event, span=event.until is not None)
    crashed = failover.fail_coordinator("timeline kill")
    who = crashed.name if crashed is not None else "no coordinator up"
    run.log(event, f"{who} crashes" + _until(event))
    if crashed is None:
        return None

    def end() -> None:
        failover.repair_coordinator(crashed.name)

    return end


@event_kind("slow")
def _slow(run: ScenarioEvents, event: Slow) -> Callable[[], None]:
    """The agents named serve ``factor`` times slower (they are built slowable: the config
    names them in :func:`kossim.sim.slowdown.is_slowable`), until ``until``."""
    from kossim.sim.slowdown import set_pace

    agents = _targets(run, event)
    run.mark(f"slow x{event.factor:g} " + ",".join([*event.agents, *event.nodes]), event, span=True)
    for a in agents:
        set_pace(run.world, a, event.factor, "(timeline)" + _until(event))
    run.log(
        event, f"{', '.join(a.name for a in agents)} serve x{event.factor:g} slower" + _until(event)
    )

    def end() -> None:
        for a in agents:
            set_pace(run.world, a, 1.0)

    return end

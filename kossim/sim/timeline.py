"""The trigger timeline and partition clocks: scheduled scenario events, applied as physics.

A run whose scenario has a timeline or network faults gets one service actor,
``scenario`` (kind ``timeline``, on the coordinator's node), that fires each
event at its time, applies it through the kind's function and logs it with a
reason (``timeline:<kind>``). It also runs the random partition clocks
(``network.partitions``), holds the tasks the network dropped (so the
conservation checks find them), and measures ``messages_dropped`` and
``partition_suspicions``.

Kinds form a registry: :func:`event_kind` registers ``apply(run, event)``
for a kind whose model is in :mod:`kossim.config.timeline`; ``apply`` acts on
the world (``run.world``) and returns what ends its period at ``until`` (a
callable), or ``None``. A surge is the one kind known ahead: the arrival
process follows the timeline's rate schedule from the start (a time change of
the same draws, so arrivals stay on their stream and policies stay paired).

What happened is kept as *marks* ``(label, start, end)`` for the report's
timelines: each becomes a time series ``event:<label>`` (1 from its start, 0
from its end; an instant is one point at 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kossim.config.models import COORDINATOR
from kossim.config.timeline import (
    Heal,
    Inject,
    Kill,
    LinkChange,
    Partition,
    Repair,
    SetParam,
    Surge,
    agent_names,
    names_to_nodes,
    partition_sides,
    timeline_events,
    with_value,
)
from kossim.dists import lean_sampler, sampler
from kossim.policy import Behaviour
from kossim.registry import resolve
from kossim.sim.faults import FaultyKernel
from kossim.sim.streams import stream
from kossim.sim.task import Task

if TYPE_CHECKING:
    from kossim.sim.agent import Agent
    from kossim.sim.world import World

__all__ = ["SCENARIO_ACTOR", "ScenarioEvents", "event_kind", "install", "marks_series"]

SCENARIO_ACTOR = "scenario"

Apply = Callable[["ScenarioEvents", Any], "Callable[[], None] | None"]
_KINDS: dict[str, Apply] = {}


def event_kind(kind: str) -> Callable[[Apply], Apply]:
    """Register ``apply(run, event) -> end of its period | None`` for timeline ``kind``."""

    def register(apply: Apply) -> Apply:
        _KINDS[kind] = apply
        return apply

    return register


class ScenarioEvents(Behaviour):
    """The scenario's own actor: timeline events, partition clocks, dropped tasks."""

    kind = "timeline"
    id = "scenario"
    description = "fires the timeline's events and the partition clocks; holds dropped tasks"

    def __init__(self, world: World) -> None:
        super().__init__(None, stream(world.seed, "timeline"))
        self.world = world
        self.events = timeline_events(world.exp.scenario.timeline)
        # (label, start, end or None, a period?): what the report's timelines show
        self.marks: list[tuple[str, float, float | None, bool]] = []
        self.killed: dict[int, int] = {}  # agent index -> kills of the timeline in force
        self.partitions: set[Any] = set()  # keys of the timeline's partitions in force
        self.partition_suspicions = 0
        self._inject: dict[int, tuple[Callable[[], float], Any]] = {}
        kernel = world.kernel
        assert isinstance(kernel, FaultyKernel)
        self.kernel = kernel

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        for index, event in enumerate(self.events):
            ctx.after(event.at, "event", index)
        for index, clock in enumerate(self.world.exp.scenario.network.partitions):
            self.world.env.process(self._partition_clock(index, clock))

    def held(self) -> list[Any]:
        """Dropped tasks not yet recovered (one whose copy lives on is that copy's)."""
        families = self.world.ledger.families
        out = []
        for t in self.kernel.dropped:
            if t.end >= 0 or t.cancelled:
                continue
            family = families.get(t.id)
            if family is not None and any(
                m is not t and m.end < 0 and not m.cancelled for m in family.members
            ):
                continue
            out.append(t)
        return out

    # -- events ---------------------------------------------------------------------------
    def on_event(self, sender: None, index: int) -> None:
        event = self.events[index]
        apply = _KINDS.get(event.kind)
        if apply is None:
            raise RuntimeError(f"timeline kind {event.kind!r} has no apply function registered")
        end = apply(self, event)
        until = getattr(event, "until", None)
        if end is not None and until is not None:
            self.ctx.after(until - self.ctx.now, "end", (index, end))

    def on_end(self, sender: None, news: tuple[int, Callable[[], None]]) -> None:
        index, end = news
        end()
        self.log(self.events[index], "ends (until)", "end")

    def log(self, event: Any, reason: str, suffix: str = "") -> None:
        if self.ctx.tracing:
            note = f" ({event.note})" if event.note else ""
            kind = f"timeline:{event.kind}" + (f":{suffix}" if suffix else "")
            self.ctx.log(kind, f"timeline {event.kind} at {event.at:g}: {reason}{note}")

    def mark(self, label: str, event: Any, span: bool = False) -> None:
        self.marks.append((label, event.at, getattr(event, "until", None), span))

    def on_logged(self, sender: None, news: tuple[Any, str]) -> None:
        event, reason = news
        self.log(event, reason, "end")

    # -- random partitions ------------------------------------------------------------------
    def _partition_clock(self, index: int, clock: Any) -> Any:
        world = self.world
        name = clock.name or f"random-{index}"
        up = lean_sampler(clock.up, stream(world.seed, f"partition:{name}:up"))
        down = lean_sampler(clock.down, stream(world.seed, f"partition:{name}:down"))
        pick = stream(world.seed, f"partition:{name}:who")
        sc = world.exp.scenario
        fixed = partition_sides(sc, clock.groups, ()) if clock.groups is not None else None
        hosts = sorted({a.node for a in world.agents})
        while True:
            yield world.env.timeout(up())
            if fixed is not None:
                sides = fixed
            else:
                sides = [{str(n) for n in pick.choice(hosts, clock.size, replace=False)}]
            key = ("clock", name)
            self.kernel.cuts.add(key, sides)
            start = world.env._now
            self.marks.append((f"partition {name}", start, None, True))
            mark = len(self.marks) - 1
            self._log_cut(name, f"cut apart: {_shown(sides)} from the rest")
            yield world.env.timeout(down())
            self.kernel.cuts.remove(key)
            self.marks[mark] = (f"partition {name}", start, world.env._now, True)
            self._log_cut(name, "healed")

    def _log_cut(self, name: str, reason: str) -> None:
        if self.ctx.tracing:
            self.ctx.log("partition", f"partition clock {name}: {reason}")

    # -- what the rest of the world asks ---------------------------------------------------
    def judged(self, agent: Agent, crash: int, now: float, false: bool) -> None:
        """A detector's suspicion of ``agent``: a false one is a partition suspicion when the
        last message the agent sent towards the coordinator's node (its heartbeat) was cut
        by a partition, rather than delivered or lost to a lossy link."""
        kernel = self.kernel
        if false and now >= kernel.measure_from and kernel.cut_off.get(agent.name, False):
            self.partition_suspicions += 1

    def metric_rows(self, start: float, end: float) -> list[tuple[str, str, float]]:
        dropped = self.kernel.drop_counts()
        kinds = sorted(set(self.world._declared_kinds) | set(dropped))
        rows = [("messages_dropped", "all", float(sum(dropped.values())))]
        rows += [("messages_dropped", f"kind={k}", float(dropped.get(k, 0))) for k in kinds]
        rows.append(("partition_suspicions", "all", float(self.partition_suspicions)))
        return rows


def _shown(sides: list[set[str]]) -> str:
    return " | ".join(",".join(sorted(s)) for s in sides)


# -- the kinds --------------------------------------------------------------------------------
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


def _targets(run: ScenarioEvents, event: Kill | Repair) -> list[Agent]:
    sc = run.world.exp.scenario
    names = set(agent_names(sc, event.agents, ()))
    nodes = names_to_nodes(sc, event.nodes, ())
    return [a for a in run.world.agents if a.name in names or a.node in nodes]


@event_kind("kill")
def _kill(run: ScenarioEvents, event: Kill) -> Callable[[], None]:
    agents = _targets(run, event)
    run.mark("kill " + ",".join([*event.agents, *event.nodes]), event, span=True)
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
    run.kernel.cuts.add(key, sides)
    run.partitions.add(key)
    run.mark(f"partition {event.name or ''}".strip(), event, span=True)
    run.log(event, f"cut apart: {_shown(sides)} from the rest" + _until(event))

    def end() -> None:
        run.kernel.cuts.remove(key)
        run.partitions.discard(key)

    return end


@event_kind("heal")
def _heal(run: ScenarioEvents, event: Heal) -> None:
    keys = [k for k in run.partitions if event.name is None or k[1] == event.name]
    for key in keys:
        run.kernel.cuts.remove(key)
        run.partitions.discard(key)
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


# -- arrivals under surges ----------------------------------------------------------------------
def warp_arrivals(world: World, surges: list[Surge]) -> None:
    """Arrivals at the rate times the product of the surges in force: each inter-arrival
    draw ``g`` (in the base rate's time) becomes the time that accumulates ``g`` of it."""
    cuts = sorted({0.0, *(s.at for s in surges), *(s.until for s in surges if s.until)})
    segments: list[tuple[float, float]] = []  # (from, factor)
    for t in cuts:
        f = 1.0
        for s in surges:
            if s.at <= t and (s.until is None or t < s.until):
                f *= s.factor
        segments.append((t, f))
    base, env = world._iat, world.env

    def iat() -> float:
        now = env._now
        left = base()
        t = now
        for i, (_, f) in enumerate(segments):
            stop = segments[i + 1][0] if i + 1 < len(segments) else float("inf")
            if stop <= t:
                continue
            room = (stop - t) * f
            if left <= room:
                return t + left / f - now
            left -= room
            t = stop
        return t - now  # unreachable: the last segment is open

    world._iat = iat  # type: ignore[assignment]


# -- installation -------------------------------------------------------------------------------
def install(world: World) -> ScenarioEvents:
    """Spawn the scenario actor and hook what it measures (runs with a faulty kernel)."""
    run = ScenarioEvents(world)
    world.spawn("timeline", SCENARIO_ACTOR, COORDINATOR, run)
    surges = [e for e in run.events if isinstance(e, Surge)]
    if surges:
        warp_arrivals(world, surges)
    ledger = world.ledger
    judge = ledger.judge

    def judged(agent: Agent, crash: int, now: float) -> None:
        judge(agent, crash, now)
        run.judged(agent, crash, now, agent.epoch < crash)

    ledger.judge = judged  # type: ignore[method-assign]
    return run


def marks_series(world: World) -> dict[str, tuple[list[float], list[float]]]:
    """The timeline's marks as time series ``event:<label>`` (for the report's timelines)."""
    run = world.scenario_events
    if run is None:
        return {}
    end_time = world.recorder.end_time
    series: dict[str, tuple[list[float], list[float]]] = {}
    for label, start, end, span in sorted(run.marks, key=lambda m: m[1]):
        times, values = series.setdefault(f"event:{label}", ([], []))
        if span:
            times += [start, min(end if end is not None else end_time, end_time)]
            values += [1.0, 0.0]
        else:
            times.append(start)
            values.append(0.0)
    return series

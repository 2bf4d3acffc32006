"""The trigger timeline and partition clocks: scheduled scenario events, applied as physics.

A run whose scenario has a timeline or network faults gets one service actor,
``scenario`` (kind ``timeline``, on the coordinator's node), that fires each
event at its time, applies it through the kind's function and logs it with a
reason (``timeline:<kind>``). It also runs the random partition clocks
(``network.partitions``), holds the tasks the network dropped (so the
conservation checks find them), and measures ``messages_dropped``,
``partition_suspicions`` and ``partitioned_time``.

Kinds form a registry (:mod:`kossim.sim.timeline_kinds`): :func:`event_kind`
registers ``apply(run, event)`` for a kind whose model is in
:mod:`kossim.config.timeline`; ``apply`` acts on the world (``run.world``) and
returns what ends its period at ``until`` (a callable), or ``None``. A surge
is the one kind known ahead: the arrival process follows the timeline's rate
schedule from the start (a time change of the same draws, so arrivals stay on
their stream and policies stay paired).

What happened is kept as *marks* ``(label, start, end)`` for the report's
timelines: each becomes a time series ``event:<label>`` (1 from its start, 0
from its end; an instant is one point at 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kossim.config.models import COORDINATOR
from kossim.config.places import partition_sides
from kossim.config.timeline import LinkChange, Surge, timeline_events
from kossim.dists import lean_sampler
from kossim.policy import Behaviour
from kossim.sim.faults import FaultyKernel
from kossim.sim.streams import stream
from kossim.sim.task import DROPPED
from kossim.sim.timeline_kinds import KINDS, event_kind, shown

if TYPE_CHECKING:
    from kossim.sim.agent import Agent
    from kossim.sim.world import World

__all__ = ["SCENARIO_ACTOR", "ScenarioEvents", "event_kind", "install", "marks_series"]

SCENARIO_ACTOR = "scenario"


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
        self.open_marks: dict[Any, int] = {}  # periods a paired end event will close
        self.spans: list[list[Any]] = []  # [start, end or None] of every partition
        self._open_spans: dict[Any, int] = {}
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
        """Dropped tasks not yet recovered, one per task: a dropped copy whose task lives on
        in a copy not dropped is that copy's; a task whose live copies are all dropped is
        counted once."""
        families = self.world.ledger.families
        out = []
        for t in self.kernel.dropped:
            if t.state != DROPPED or t.end >= 0 or t.cancelled:
                continue  # re-sent since (it lives where it went), ended, or a lost copy
            family = families.get(t.id)
            if family is not None:
                others = [m for m in family.members if m is not t and m.end < 0 and not m.cancelled]
                if any(m.state != DROPPED for m in others):
                    continue  # it lives on in a copy that is not dropped
                if any(m.copy < t.copy for m in others):
                    continue  # every live copy is dropped: counted once, with the first
            out.append(t)
        return out

    # -- events ---------------------------------------------------------------------------
    def on_event(self, sender: None, index: int) -> None:
        event = self.events[index]
        apply = KINDS.get(event.kind)
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

    def mark(self, label: str, event: Any, span: bool = False, key: Any = None) -> None:
        """Keep ``event`` for the report's timelines; a period without ``until`` stays open
        (to the end of the run) unless its paired end event closes ``key``."""
        until = getattr(event, "until", None)
        self.marks.append((label, event.at, until, span))
        if span and until is None and key is not None:
            self.open_marks[key] = len(self.marks) - 1

    def close_mark(self, key: Any) -> None:
        """A paired end event (``repair``, ``heal``) ends the open period ``key`` now."""
        index = self.open_marks.pop(key, None)
        if index is not None:
            label, start, _, span = self.marks[index]
            self.marks[index] = (label, start, self.ctx.now, span)

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
            why = self.cut(key, sides)
            start = world.env._now
            self.marks.append((f"partition {name}", start, None, True))
            mark = len(self.marks) - 1
            self._log_cut(name, why)
            yield world.env.timeout(down())
            self.heal(key)
            self.marks[mark] = (f"partition {name}", start, world.env._now, True)
            self._log_cut(name, "healed")

    def _log_cut(self, name: str, reason: str) -> None:
        if self.ctx.tracing:
            self.ctx.log("partition", f"partition clock {name}: {reason}")

    # -- partitions -------------------------------------------------------------------------
    def cut(self, key: Any, sides: list[set[str]]) -> str:
        """Put partition ``key`` in force; the reason to log (every cut, from the timeline or
        a clock, comes here: the place to tell whoever must know of agents that became
        unreachable)."""
        self.kernel.cuts.add(key, sides)
        self.spans.append([self.ctx.now, None])
        self._open_spans[key] = len(self.spans) - 1
        off = [a.name for a in self.unreachable()]
        return f"cut apart: {shown(sides)} from the rest; agents unreachable from the " + (
            f"coordinator: {', '.join(off)}" if off else "coordinator: none"
        )

    def heal(self, key: Any) -> bool:
        """End partition ``key``; whether it was in force."""
        index = self._open_spans.pop(key, None)
        if index is not None:
            self.spans[index][1] = self.ctx.now
        return self.kernel.cuts.remove(key)

    def partitioned_time(self, start: float, end: float) -> float:
        """Time within ``[start, end]`` during which some partition was in force."""
        total, reach = 0.0, start
        for a, b in sorted((a, end if b is None else b) for a, b in self.spans):
            a, b = max(a, reach), min(b, end)
            if b > a:
                total += b - a
                reach = b
        return total

    def unreachable(self) -> list[Agent]:
        """Agents that the partitions in force cut off from the coordinator's node."""
        return [a for a in self.world.agents if self.kernel.cut(a.node, COORDINATOR)]

    # -- what the rest of the world asks ---------------------------------------------------
    def judged(self, agent: Agent, crash: int, now: float, false: bool, by: str) -> None:
        """Detector ``by``'s suspicion of ``agent``: a false one is a partition suspicion
        when the last message the agent sent to the detector (its heartbeat) was cut by a
        partition, rather than delivered or lost to a lossy link."""
        kernel = self.kernel
        if false and now >= kernel.measure_from and kernel.cut_off.get((agent.name, by), False):
            self.partition_suspicions += 1

    def metric_rows(self, start: float, end: float) -> list[tuple[str, str, float]]:
        dropped = self.kernel.drop_counts()
        kinds = sorted(set(self.world._declared_kinds) | set(dropped))
        rows = [("messages_dropped", "all", float(sum(dropped.values())))]
        rows += [("messages_dropped", f"kind={k}", float(dropped.get(k, 0))) for k in kinds]
        rows.append(("partition_suspicions", "all", float(self.partition_suspicions)))
        rows.append(("partitioned_time", "all", self.partitioned_time(start, end)))
        return rows


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

    world._iat = iat


# -- installation -------------------------------------------------------------------------------
def install(world: World) -> ScenarioEvents:
    """Spawn the scenario actor and hook what it measures (runs with a faulty kernel)."""
    run = ScenarioEvents(world)
    world.spawn("timeline", SCENARIO_ACTOR, COORDINATOR, run)
    surges = [e for e in run.events if isinstance(e, Surge)]
    if surges:
        warp_arrivals(world, surges)
    if any(isinstance(e, LinkChange) and e.latency is not None for e in run.events):
        run.kernel.instant = False  # a link's latency will change: messages take time
    ledger = world.ledger
    judge = ledger.judge

    def judged(agent: Agent, crash: int, now: float, by: str = "") -> None:
        judge(agent, crash, now, by)
        run.judged(agent, crash, now, agent.epoch < crash, by)

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

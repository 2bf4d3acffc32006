"""Process pauses: an agent that stalls now and then (a garbage-collection pause, a VM
migration, a swapped-out process), deaf and mute while it lasts.

Physics, not policy. An agent of a group with ``pause: {every, length}`` runs
a pause clock on its own named streams (``pause:<agent>:every`` and
``pause:<agent>:length``), the same for every policy: after each ``every``
of time up it pauses for ``length``. While paused:

* its running tasks make no progress (their completion events are
  superseded and re-armed on resuming, with the work that was left);
* it handles no message and no timer: both are held, in arrival order, in
  the agent's inbox and handled when it resumes (the kernel delivered them;
  the process had not run yet). It therefore sends nothing either: no
  heartbeat, no lease renewal. That is what makes a pause dangerous: the rest
  of the system cannot tell it from a crash, and the paused agent cannot tell
  that time passed.

A crash during a pause ends the pause (the process is gone): the held
messages are then handled by the down agent, as any message reaching it. A
pause due while the agent is down is skipped. Paused slot-time counts as
busy (the slots are held). Agents without ``pause`` are plain agents and pay
nothing.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from simpy.events import Timeout

from kossim.config.base import COORDINATOR
from kossim.dists import lean_sampler
from kossim.sim.agent import Agent, AgentState
from kossim.sim.streams import stream
from kossim.sim.task import Task

if TYPE_CHECKING:
    from kossim.config.locks import Pause
    from kossim.sim.kernel import Actor, Handlers
    from kossim.sim.world import World

__all__ = ["PauseBook", "pausing", "watch_pauses"]


class _Held(dict[str, Any]):
    """The handlers of a paused actor: every message or timer goes to the inbox."""

    __slots__ = ("inbox",)

    def __init__(self, inbox: list[tuple[str, Any, Any]]) -> None:
        super().__init__()
        self.inbox = inbox

    def __missing__(self, kind: str) -> Any:
        return partial(_hold, self.inbox, kind)


def _hold(inbox: list[tuple[str, Any, Any]], kind: str, sender: Any, payload: Any) -> None:
    inbox.append((kind, sender, payload))


def _task_in(payload: Any) -> Task | None:
    """The task a held message carries, if any (so that conservation checks find it): a
    task itself, or a hand-off's; a message that only names a task (a lock's grant, a
    timer's payload) carries none."""
    if payload.__class__ is Task:
        return payload
    got = getattr(payload, "task", None)
    return got if isinstance(got, Task) else None


def pausing(base: type[Agent]) -> type[Agent]:
    """``base`` (an agent class) with the pause physics of its group's ``pause``."""
    got = _PAUSING.get(base)
    if got is not None:
        return got

    class Pausing(base):  # type: ignore[valid-type,misc]
        __slots__ = ("_handlers", "_inbox", "_since", "paused", "paused_time", "pauses")

        def __init__(self, world: World, profile: AgentState, node: str, *more: Any) -> None:
            super().__init__(world, profile, node, *more)
            self.paused = False
            self.pauses = 0  # begun in the measurement window
            self.paused_time = 0.0  # inside the window, of pauses that ended
            self._since = 0.0
            self._inbox: list[tuple[str, Any, Any]] = []
            self._handlers: Handlers | None = None
            group = next(g for g in world.exp.scenario.agents if g.group == profile.group)
            assert group.pause is not None
            world.env.process(self._clock(group.pause))

        def _clock(self, spec: Pause) -> Any:
            seed, env = self.world.seed, self.world.env
            every = lean_sampler(spec.every, stream(seed, f"pause:{self.name}:every"))
            length = lean_sampler(spec.length, stream(seed, f"pause:{self.name}:length"))
            while True:
                yield env.timeout(every())
                span = length()
                if not self.up:
                    continue  # a down process does not pause
                self._pause(span)
                yield env.timeout(span)
                if self.paused:
                    self._resume()

        @property
        def _actor(self) -> Actor:
            return self.world.agent_actors[self.index]

        def _pause(self, span: float) -> None:
            now = self.world.env._now
            self.account(now)
            self._refresh(now)
            for t in self.running:
                t.ev = None  # superseded: no progress while paused
            self.paused = True
            self._since = now
            if now >= self.world.kernel.measure_from:
                self.pauses += 1
            actor = self._actor
            self._handlers = actor.handlers
            actor.handlers = _Held(self._inbox)  # type: ignore[assignment]
            self._log("pause", f"{self.name} pauses for {span:.4g}", span=span)

        def _unpause(self) -> None:
            now = self.world.env._now
            self.paused_time += self.paused_in_window(now)
            self.paused = False
            for t in self.running:
                t.seg = now  # the pause did no work
            assert self._handlers is not None
            self._actor.handlers = self._handlers
            self._handlers = None

        def paused_in_window(self, now: float) -> float:
            """The time of the current pause up to ``now`` inside the measurement window."""
            return max(0.0, now - max(self._since, self.world.kernel.measure_from))

        def _replay(self) -> None:
            inbox, self._inbox = self._inbox, []
            handlers = self._actor.handlers
            for kind, sender, payload in inbox:
                handlers[kind](sender, payload)

        def _resume(self) -> None:
            self._unpause()
            env = self.world.env
            for t in self.running:
                ev = t.ev = Timeout(env, t.remaining / t.rate, t)
                ev.callbacks.append(self._done)
            self._log("resume", f"{self.name} resumes; {len(self._inbox)} messages held")
            self._replay()

        def _refresh(self, now: float) -> None:
            if not self.paused:
                super()._refresh(now)

        def start(self, task: Task) -> None:
            super().start(task)
            if self.paused and task.ev is not None:
                task.ev = None  # it waits for the pause to end, like the others

        def fail(self) -> None:
            if not self.paused:
                super().fail()
                return
            self._unpause()
            self._log("resume", f"{self.name}'s pause ends with a crash")
            super().fail()
            self._replay()

        def live_tasks(self) -> list[Any]:
            held = [t for _, _, p in self._inbox if (t := _task_in(p)) is not None]
            return [*super().live_tasks(), *held]

        def _log(self, kind: str, reason: str, **fields: Any) -> None:
            log = self.world.kernel.log
            if log is not None:
                log.record(self.world.env._now, kind, self.name, reason, None, fields)

    Pausing.__name__ = Pausing.__qualname__ = f"Pausing{base.__name__}"
    _PAUSING[base] = Pausing
    return Pausing


_PAUSING: dict[type[Agent], type[Agent]] = {}


class PauseBook:
    """A passive actor's behaviour: the pauses of the measurement window as metric rows
    ``pauses`` and ``paused_time`` (agent-time), scopes ``all`` and ``group=G``."""

    sends: tuple[str, ...] = ()

    def __init__(self, world: World) -> None:
        self.world = world

    def on_start(self, ctx: Any) -> None:
        self.ctx = ctx

    def held(self) -> list[Task]:
        return []

    def metric_rows(self, start: float, end: float) -> list[tuple[str, str, float]]:
        counts: dict[str, list[float]] = {}
        for a in self.world.agents:
            if isinstance(a, tuple(_PAUSING.values())):
                got = counts.setdefault(a.profile.group, [0.0, 0.0])
                got[0] += a.pauses  # type: ignore[attr-defined]
                got[1] += a.paused_time + (a.paused_in_window(end) if a.paused else 0.0)  # type: ignore[attr-defined]
        rows = [
            ("pauses", "all", sum(c[0] for c in counts.values())),
            ("paused_time", "all", sum(c[1] for c in counts.values())),
        ]
        for group, (n, t) in sorted(counts.items()):
            rows += [("pauses", f"group={group}", n), ("paused_time", f"group={group}", t)]
        return rows


def watch_pauses(world: World) -> None:
    """Place the pause book (an actor ``pauses`` on the coordinator's node) when agents pause."""
    if not any(g.pause for g in world.exp.scenario.agents):
        return
    from kossim.sim.locks import place

    place(world, "pauses", "pauses", COORDINATOR, PauseBook(world))

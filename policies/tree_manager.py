"""A delegation tree's manager: a queue of decisions over its children's reported loads.

A manager receives tasks (``assign``; the root: arrivals) and delegates each
to one child, a manager below (``assign``) or an agent (``task``). Deciding
is work: a task waits for one of ``decision_capacity`` decision slots, then
holds it for ``decision_time + scan_time x children scanned``, so a manager
is a queue of its own whose utilisation is measured. The choice is the
eligible child (its subtree has an agent with the task's skills) believed up
with the least ``(load + 1) / rate``, from the loads the children *report*
every ``report_interval`` (``load``: tasks held and service rate, summed over
a subtree) plus the tasks sent to each child since its last report: a view
as stale as the report period plus the latency, compounding level by level.

Failures (``manager_failures``): a manager goes down and is taken over by its
parent, which adopts its children until it is back
(:mod:`policies.tree_failures`).
"""

from __future__ import annotations

from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kossim.dists import sampler
from kossim.policy import Behaviour
from kossim.sim.kernel import Actor, Timer
from kossim.sim.task import WAITING, Task
from policies.tree_failures import ManagerFailures

__all__ = ["Directory", "Manager"]


@dataclass
class Directory:
    """The tree as configured (static): shared by every manager of a run, read only."""

    children: dict[str, list[str]]
    covers: dict[str, frozenset[tuple[str, ...]]]
    """The task skill sets some agent of each subtree (or each agent) can serve."""
    rate: dict[str, float]
    """Configured service rate (capacity x speed) of each subtree or agent."""
    level: dict[str, int]
    stats: dict[str, Any] = field(default_factory=dict)


class _Child:
    """What a manager believes of one child: as fresh as its last report."""

    __slots__ = ("actor", "age", "agent", "covers", "heard", "load", "name", "rate", "taken", "up")

    def __init__(
        self, actor: Actor, agent: bool, covers: frozenset[tuple[str, ...]], rate: float, now: float
    ) -> None:
        self.actor = actor
        self.name = actor.name
        self.agent = agent
        self.covers = covers
        self.rate = rate
        self.load = 0.0
        self.age = 0.0  # how old the facts in its last report were when it was sent
        self.heard = now  # a grace period: silence is judged from now on
        self.up = True
        self.taken = False  # a manager child taken over after its failure


class Manager(ManagerFailures, Behaviour):
    """One manager of a delegation tree (see the module's docstring)."""

    kind = "manager"
    sends: tuple[str, ...] = ("assign", "load", "subscribe", "takeover", "released", "task")

    def join(self, directory: Directory, name: str) -> Manager:
        """Take place ``name`` in the tree (before ``on_start``)."""
        self.directory = directory
        self.level = directory.level[name]
        self.own = directory.children[name]
        self.queue: deque[Task] = deque()
        self.deciding: dict[Task, tuple[Timer, float]] = {}
        self.waiting: list[Task] = []  # decided, but no eligible child is believed up
        self.children: dict[str, _Child] = {}
        self.adopted: dict[str, list[str]] = {}  # child taken over -> what was adopted for it
        self.parent: Actor | None = None
        self.up = True
        self.taken_by: Actor | None = None
        # Measurements: decision slot-time (start, end), decision ends, reroutes, down spells.
        # Per finished decision (typed arrays: a long run makes millions): when it began and
        # ended, and how old the chosen child's facts were (-1: no child could take the task).
        self.began = array("d")
        self.decided = array("d")
        self.ages = array("d")
        self.cut: list[tuple[float, float]] = []  # decisions a crash interrupted
        self.rerouted: list[float] = []
        self.down: list[list[float]] = []
        directory.stats[name] = self
        return self

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        p = self.params
        self.interval = p.report_interval
        self.suspect_after = p.suspect_after or 3 * p.report_interval
        self.capacity = p.decision_capacity
        ctx.after(0.0, "boot")

    def on_boot(self, sender: None, payload: None) -> None:
        """Time 0, every actor placed: ask the children for reports, start the clocks."""
        ctx = self.ctx
        self._take_back()
        ctx.after(float(ctx.rng.uniform(0.0, self.interval)), "report")
        ctx.after(self.interval, "check")
        fail = self.params.manager_failures
        if fail is not None and self.level > 0:
            self._up_for = sampler(fail.up, ctx.rng)
            self._down_for = sampler(fail.down, ctx.rng)
            ctx.after(self._up_for(), "crash")

    def _take_back(self) -> None:
        """Own children only, each asked to report here."""
        ctx, now = self.ctx, self.ctx.now
        self.children = {c: self._child(c, now) for c in self.own}
        self.adopted = {}
        for c in self.own:
            ctx.send(self.children[c].actor, "subscribe", self.interval)

    def _child(self, name: str, now: float) -> _Child:
        """A fresh belief about tree member ``name`` (an agent, or a manager)."""
        d = self.directory
        return _Child(
            self.ctx.actor_named(name), name not in d.children, d.covers[name], d.rate[name], now
        )

    def held(self) -> list[Task]:
        return [*self.queue, *self.deciding, *self.waiting]

    # -- tasks ------------------------------------------------------------------------------
    def on_assign(self, sender: Any, task: Task) -> None:
        """A task delegated here by the manager above. Down and taken over, this manager
        gives it back to the sender, whose view is wrong (it may have adopted this manager
        from a taker that is itself down: passing it to the taker would send it round)."""
        if not self.up and self.taken_by is not None:
            task.state = WAITING
            self.ctx.send(sender, "released", task)
            return
        self.receive(task)

    def on_released(self, sender: Actor, task: Task) -> None:
        """A task given back by a failed child: decided again here (a reroute). The
        release is news that the child is down, and taken over (its subtree adopted)."""
        child = self.children.get(sender.name)
        if child is not None and not child.taken:
            self._suspect(child, "released a task")
        task.hops = self.level
        if task.measured:
            self.rerouted.append(self.ctx.now)
        if self.ctx.tracing:
            self.ctx.log("reroute", f"task {task.id} released by failed {sender.name}", task)
        self.receive(task)

    def receive(self, task: Task) -> None:
        task.state = WAITING
        if not self.up and self.taken_by is not None:
            self.ctx.send(self.taken_by, "released", task)  # down and taken over: passed up
            return
        self.queue.append(task)
        if self.up:
            self.pump()

    def pump(self) -> None:
        """Start decisions while a decision slot is free."""
        queue, deciding, ctx = self.queue, self.deciding, self.ctx
        p = self.params
        while queue and len(deciding) < self.capacity:
            task = queue.popleft()
            work = p.decision_time + p.scan_time * len(self.children)
            deciding[task] = (ctx.after(work, "decided", task), ctx.now)

    def on_decided(self, sender: None, task: Task) -> None:
        _, began = self.deciding.pop(task)
        now = self.ctx.now
        self.began.append(began)
        self.decided.append(now)
        chosen = self.decide(task)
        self.ages.append(now - chosen.heard + chosen.age if chosen is not None else -1.0)
        self.pump()

    def decide(self, task: Task) -> _Child | None:
        """A decision taken: where ``task`` goes (a manager taking entries may escalate)."""
        return self.place(task)

    def best(self, task: Task, skip: str | None = None) -> tuple[_Child | None, float]:
        """The eligible child believed up (other than ``skip``) with the least
        ``(load + 1) / rate``, and that score."""
        best: _Child | None = None
        score = 0.0
        for c in self.children.values():
            if c.up and not c.taken and (not task.skills or task.skills in c.covers):
                s = (c.load + 1.0) / c.rate
                if (best is None or s < score) and c.name != skip:
                    best, score = c, s
        return best, score

    def place(self, task: Task) -> _Child | None:
        """Send ``task`` to the best eligible child believed up (which is returned), or hold
        it until one is."""
        best, _ = self.best(task)
        ctx = self.ctx
        if best is None:
            self.waiting.append(task)
            if ctx.tracing:
                ctx.log("hold", f"task {task.id}: no eligible child believed up", task)
            return None
        if ctx.tracing:
            self._log_choice(task, best)
        return self.delegate(task, best)

    def delegate(self, task: Task, best: _Child) -> _Child:
        """One hop down: ``task`` to child ``best``."""
        ctx = self.ctx
        best.load += 1.0
        task.hops += 1
        if best.agent:
            task.handoff += ctx.now  # leaves the tree (entered at ``Tree.enter``)
            ctx.send(best.actor, "task", task)
        else:
            ctx.send(best.actor, "assign", task)
        return best

    def _log_choice(self, task: Task, best: _Child, why: str = "least") -> None:
        now = self.ctx.now
        seen = [
            f"{c.name} {c.load:g}/{c.rate:g}{'' if c.up else ' down'} ({now - c.heard:.3g} old)"
            for c in list(self.children.values())[:8]
        ]
        self.ctx.log(
            "delegate",
            f"task {task.id} -> {best.name}: {why} (load+1)/rate of [{', '.join(seen)}"
            f"{' ...' if len(self.children) > 8 else ''}]",
            task,
            to=best.name,
            level=self.level,
        )

    # -- reports ----------------------------------------------------------------------------
    def on_load(self, sender: Actor, report: tuple[float, float, float]) -> None:
        """A child's load report: what it holds (summed over its subtree), its rate, and
        the age of those facts (0 from an agent; from a manager, its views' mean age)."""
        child = self.children.get(sender.name)
        if child is None or not self.up:
            return  # no longer (or not yet) this manager's child, or nobody listens
        if child.taken:
            self._give_back(child)
        child.load, rate, child.age = report
        child.rate = rate
        child.heard = self.ctx.now
        up = rate > 0
        if up != child.up and self.ctx.tracing:
            self.ctx.log("trust", f"{child.name} reports again", to=child.name)
        child.up = up
        if up and self.waiting:
            waiting, self.waiting = self.waiting, []
            for task in waiting:
                self.place(task)

    def on_report(self, sender: None, payload: None) -> None:
        """Every ``report_interval``: the subtree's load and rate to the parent, while up."""
        if self.up and self.parent is not None:
            now = self.ctx.now
            load = rate = age = 0.0
            for c in self.children.values():
                if c.up and not c.taken:
                    load += c.load
                    rate += c.rate
                    age += c.rate * (now - c.heard + c.age)
            load += len(self.queue) + len(self.deciding) + len(self.waiting)
            self.ctx.send(self.parent, "load", (load, rate, age / rate if rate else 0.0))
        self.ctx.after(self.interval, "report")

    def on_subscribe(self, sender: Actor, interval: float) -> None:
        self.parent = sender

    # -- measurements -----------------------------------------------------------------------
    def measured(self, start: float, end: float) -> tuple[float, float, float]:
        """``(utilisation of time up, decisions per unit time, reroutes)`` in the window."""
        began, ended = np.frombuffer(self.began), np.frombuffer(self.decided)
        busy = float(np.clip(np.minimum(ended, end) - np.maximum(began, start), 0, None).sum())
        busy += sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.cut)
        busy += sum(end - max(a, start) for _, (_, a) in self.deciding.items() if a < end)
        down = sum(max(0.0, min(b if b >= 0 else end, end) - max(a, start)) for a, b in self.down)
        up = (end - start) - down
        decisions = int(((ended >= start) & (ended <= end)).sum())
        util = busy / (self.capacity * up) if up > 0 else float("nan")
        rate = decisions / (end - start) if end > start else float("nan")
        return util, rate, float(sum(1 for t in self.rerouted if t >= start))

    def view_ages(self, start: float, end: float) -> np.ndarray:
        """The age of the facts behind each decision in the window that placed a task."""
        ended, ages = np.frombuffer(self.decided), np.frombuffer(self.ages)
        return ages[(ended >= start) & (ended <= end) & (ages >= 0)]

"""A delegation tree's managers under failure: suspicion, take-over, adoption, repair
(mixed into :class:`policies.tree_manager.Manager`).

Failures (``manager_failures``): a manager that goes down stops deciding and
reporting; the tasks in its hands stay in its queue (durable storage on its
node). Its parent suspects it after ``suspect_after`` without a report,
asks for its tasks (``takeover``; they come back as ``released`` messages,
each a task *rerouted*) and adopts its children: they report to the parent
(``subscribe``) and are delegated to directly until the manager is heard
from again. A repaired manager takes its children back (``subscribe``); its
parent drops what it adopted through it when its first report arrives.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kossim.sim.kernel import Actor, Timer
from kossim.sim.task import Task

if TYPE_CHECKING:
    from policies.tree_manager import Directory, _Child

__all__ = ["ManagerFailures"]


class ManagerFailures:
    """A manager's side of failures: judging its children, being taken over, its clock."""

    ctx: Any
    directory: Directory
    own: list[str]
    children: dict[str, _Child]
    adopted: dict[str, list[str]]
    queue: deque[Task]
    deciding: dict[Task, tuple[Timer, float]]
    waiting: list[Task]
    up: bool
    taken_by: Actor | None
    interval: float
    suspect_after: float
    cut: list[tuple[float, float]]
    down: list[list[float]]
    _up_for: Callable[[], float]
    _down_for: Callable[[], float]

    if TYPE_CHECKING:

        def _child(self, name: str, now: float) -> _Child: ...
        def _take_back(self) -> None: ...
        def pump(self) -> None: ...

    # -- judging the children ----------------------------------------------------------------
    def on_check(self, sender: None, payload: None) -> None:
        """Every ``report_interval``: suspect children silent for ``suspect_after``."""
        ctx = self.ctx
        if self.up:
            now = ctx.now
            for c in list(self.children.values()):
                if now - c.heard > self.suspect_after and (c.up or c.name in self.own):
                    self._silent(c)
        ctx.after(self.interval, "check")

    def _silent(self, c: _Child) -> None:
        ctx = self.ctx
        if c.name in self.own and not c.up:
            ctx.send(c.actor, "subscribe", self.interval)  # ask again: it may report elsewhere
            return
        self._suspect(c, f"silent for {ctx.now - c.heard:.3g}")

    def _suspect(self, c: _Child, why: str) -> None:
        """Believe child ``c`` down; a manager is taken over, its children adopted."""
        ctx = self.ctx
        c.up = False
        if ctx.tracing:
            ctx.log("suspect", f"{c.name} {why}", to=c.name)
        if c.agent or c.taken:
            return
        c.taken = True
        ctx.send(c.actor, "takeover")
        adopted = self.adopted[c.name] = []
        d = self.directory
        share = c.load / max(len(d.children[c.name]), 1)
        for g in d.children[c.name]:
            if g not in self.children:
                child = self.children[g] = self._child(g, ctx.now)
                child.load = share
                adopted.append(g)
                ctx.send(child.actor, "subscribe", self.interval)
        if ctx.tracing:
            ctx.log("fallback", f"{c.name} taken over: adopts {', '.join(adopted)}", to=c.name)

    def _give_back(self, child: _Child) -> None:
        """A taken-over child reports again: forget what was adopted for it."""
        child.taken = False
        todo = self.adopted.pop(child.name, [])
        while todo:
            g = todo.pop()
            self.children.pop(g, None)
            todo.extend(self.adopted.pop(g, []))
        if self.ctx.tracing:
            self.ctx.log(
                "restore", f"{child.name} back: its subtree is its own again", to=child.name
            )

    def on_takeover(self, sender: Actor, payload: None) -> None:
        """The parent believes this manager failed: every task in its hands goes up."""
        ctx = self.ctx
        for timer, _ in self.deciding.values():
            timer.cancel()
        tasks = [*self.deciding, *self.queue, *self.waiting]
        self.deciding.clear()
        self.queue.clear()
        self.waiting = []
        if ctx.tracing:
            ctx.log("release", f"taken over by {sender.name}: {len(tasks)} tasks released")
        for task in tasks:
            ctx.send(sender, "released", task)
        if self.up:  # a false suspicion: take the children back at once
            self._take_back()
        else:
            self.taken_by = sender

    # -- the failure clock -----------------------------------------------------------------
    def on_crash(self, sender: None, payload: None) -> None:
        ctx = self.ctx
        self.up = False
        self.down.append([ctx.now, -1.0])
        for timer, began in self.deciding.values():
            timer.cancel()
            self.cut.append((began, ctx.now))
        held = [*self.deciding, *self.queue, *self.waiting]
        self.deciding.clear()
        self.waiting = []
        self.queue = deque(held)
        if ctx.tracing:
            ctx.log("crash", f"{ctx.name} down holding {len(held)} tasks", held=len(held))
        ctx.after(self._down_for(), "repair")

    def on_repair(self, sender: None, payload: None) -> None:
        ctx = self.ctx
        self.up = True
        self.down[-1][1] = ctx.now
        self.taken_by = None
        if ctx.tracing:
            ctx.log("repair", f"{ctx.name} up: takes its children back")
        self._take_back()
        self.pump()
        ctx.after(self._up_for(), "crash")

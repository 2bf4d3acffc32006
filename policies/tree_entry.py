"""Tasks entering a delegation tree at its lowest managers, escalated only when full.

With ``entry: leaves`` the root no longer decides every task. The front door
(the coordinator, stateless) sends each arrival to a lowest manager drawn
uniformly at random (an ``entry`` message from the coordinator's node). A
manager deciding a task that entered at it, or that a child escalated to it,
places it in a child subtree whose view shows *room* (``(load + 1) / rate <=
room``: by its last reports plus what it sent since, the task would find a
free slot), never back into the child it came from; with no such child it
passes the task to its parent (``escalate``), which does the same one level
up. The root, with no parent, sends the task down to the least loaded subtree
(its view says the whole tree is full: the task waits in some agent's queue
rather than in the root's). A task delegated *down* is placed as in a
root-entry tree and never climbs again, so a task's route climbs at most to
the root and comes down once: at most ``2 x depth - 1`` decisions (hops).

Each escalation is a decision (decision work, a hop) logged with its reason.
A lowest manager then decides about ``lambda / lowest managers`` entries plus
what its parent sends down, and a manager above only what its children
escalate: the busiest manager's decisions per unit time do not grow with the
fleet at fixed utilisation, where a root-entry tree's root makes all
``lambda`` of them.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from kossim.sim.kernel import Actor
from kossim.sim.task import Task
from policies.tree_manager import Directory, Manager, _Child

__all__ = ["Escalating"]


class Escalating(Manager):
    """A manager that takes tasks at the front door and escalates what has no room below."""

    sends: tuple[str, ...] = (*Manager.sends, "entry", "escalate")

    def join(self, directory: Directory, name: str) -> Manager:
        super().join(directory, name)
        self.climbing: dict[Task, str | None] = {}  # entered (None) or escalated by a child
        self.entered = array("d")  # when tasks entered here from the front door
        self.escalated = array("d")  # when this manager passed a task to its parent
        self.entry_escalated = array("d")  # ... of which tasks that had entered here
        return self

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        self.room = self.params.room

    def on_entry(self, sender: Actor, task: Task) -> None:
        """An arrival sent here by the front door."""
        if task.measured:
            self.entered.append(self.ctx.now)
        self.climbing[task] = None
        self.receive(task)

    def on_escalate(self, sender: Actor, task: Task) -> None:
        """A task a child had no room for."""
        self.climbing[task] = sender.name
        self.receive(task)

    def receive(self, task: Task) -> None:
        if not self.up and self.taken_by is not None:
            self.climbing.pop(task, None)  # passed up as released: placed, not escalated
        super().receive(task)

    def on_takeover(self, sender: Actor, payload: None) -> None:
        self.climbing.clear()  # every task goes up as released
        super().on_takeover(sender, payload)

    def decide(self, task: Task) -> _Child | None:
        if not self.climbing or task not in self.climbing:
            return self.place(task)
        came = self.climbing.pop(task)
        ctx = self.ctx
        best, score = self.best(task, came)
        if best is not None and score <= self.room:
            if ctx.tracing:
                self._log_choice(task, best, "room by")
            return self.delegate(task, best)
        parent = self.parent
        if parent is None:  # the root (or a manager not yet subscribed): least loaded below
            if ctx.tracing and best is not None:
                ctx.log("full", f"task {task.id}: no subtree with room, least loaded", task)
            return self.place(task)
        task.hops += 1
        now = ctx.now
        if task.measured:
            self.escalated.append(now)
            if came is None:
                self.entry_escalated.append(now)
        if ctx.tracing:
            why = (
                "no eligible child believed up"
                if best is None
                else f"best {best.name} {best.load:g}/{best.rate:g} over room {self.room:g}"
            )
            ctx.log("escalate", f"task {task.id} -> {parent.name}: {why}", task, to=parent.name)
        ctx.send(parent, "escalate", task)
        return None

    def entries(self, start: float, end: float) -> tuple[int, int, int]:
        """``(entered, escalated, of which entered here)`` in the window."""

        def count(a: array) -> int:
            t = np.frombuffer(a)
            return int(((t >= start) & (t <= end)).sum())

        return count(self.entered), count(self.escalated), count(self.entry_escalated)

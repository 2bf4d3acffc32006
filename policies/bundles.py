"""Gang bundles on the coordinator: all k subtasks start together on k distinct agents.

The engine knows what a bundle is (its subtasks share its id and complete by
its rule); the ``bundles`` coordinator decides how a gang is *scheduled*. The
k subtasks of a gang bundle arrive together; the coordinator keeps them until
it can send all k at one instant to k distinct agents its views show free,
and meanwhile serves other tasks (and the subtasks of independent and quorum
bundles) as the ``queueing`` coordinator under pull dispatch does. It always
pulls: a gang cannot be pushed into queues and still start together.

How a gang assembles (``assembly``):

* ``reserve`` (hold and wait): the oldest waiting gang holds each free agent
  it can use as soon as it is the oldest waiting work, until it holds k; a
  held agent sits idle (the engine measures ``reservation_idle``), and work
  behind the gang waits. The gang's wait is bounded by the k earliest slots
  to free.
* ``wait`` (the naive baseline): a gang starts only when k agents happen to
  be free at one decision; meanwhile free agents go to the other waiting
  work. Nothing is held idle, but under load k free agents at once are rare,
  so gangs wait long.

A held agent believed down is released and the gang holds another. Once a
gang has started, each subtask is an ordinary task: a member agent's failure
hands its part on as ``on_failure`` says (``requeue``: to another agent).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

from pydantic import Field

from kossim.policy import Params
from kossim.sim.agent import AgentState
from kossim.sim.kernel import Actor
from kossim.sim.task import Task
from policies.coordinator import Queueing

__all__ = ["Bundles", "BundlesParams", "Gang"]


class BundlesParams(Params):
    assembly: Literal["reserve", "wait"] = Field(
        default="reserve",
        description="reserve: hold free agents for the oldest gang until it has k; "
        "wait: start a gang only when k agents are free at once",
    )


class Gang:
    """A gang bundle waiting to start: its k subtasks and the agents held for it."""

    __slots__ = ("id", "members", "order", "reserved", "since")

    def __init__(self, members: list[Task], order: tuple[Any, int], since: float) -> None:
        self.id = members[0].id
        self.members = members
        self.order = order
        self.since = since
        self.reserved: list[AgentState] = []


class Bundles(Queueing):
    """The ``queueing`` coordinator (pull) that assembles gang bundles before sending them."""

    id = "bundles"
    speculates = False  # dispatch of its own: no backup copies of stragglers
    description = "pull dispatch that starts gang bundles all at once (reserving agents or not)"
    Params = BundlesParams
    assembles_gangs = True

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        self.reserve = self.params.assembly == "reserve"
        self.gang_k = {
            i: t.bundle.k
            for i, t in enumerate(ctx.scenario.workload.tasks)
            if t.bundle is not None and t.bundle.mode == "gang"
        }
        self.collecting: dict[int, list[Task]] = {}
        self.gangs: deque[Gang] = deque()

    def pulls(self, ctx: Any) -> bool:
        return True

    def held(self) -> list[Task]:
        waiting = [t for g in self.gangs for t in g.members]
        collecting = [t for ts in self.collecting.values() for t in ts]
        return [*super().held(), *waiting, *collecting]

    # -- arrivals ---------------------------------------------------------------------
    def on_arrival(self, sender: Any, task: Task) -> None:
        k = self.gang_k.get(task.tidx) if self.gang_k else None
        if k is None:
            if self.gangs:  # no short cut past a waiting gang
                self.queue.push(task)
                self.pump()
            else:
                super().on_arrival(sender, task)
            return
        parts = self.collecting.setdefault(task.id, [])
        parts.append(task)
        if len(parts) < k:
            return
        del self.collecting[task.id]
        self.gangs.append(Gang(parts, self._order(task), self.ctx.now))
        if self.ctx.tracing:
            self.ctx.log(
                "gang_wait",
                f"bundle {task.id}: {k} subtasks wait to start together "
                f"({len(self.gangs)} gangs waiting)",
                task,
            )
        self.pump()

    def _order(self, task: Task) -> tuple[Any, int]:
        return (self.discipline.key(task), task.id)

    # -- dispatch ---------------------------------------------------------------------
    def pump(self) -> None:
        if not self.gangs:
            super().pump()
            return
        if self._pumping:
            return
        self._pumping = True
        try:
            while self.gangs:
                gang = self.gangs[0]
                if self.queue and self._order(self.queue.peek()) < gang.order and self._single():
                    continue  # older work first
                if self._assemble(gang):
                    self.gangs.popleft()
                    continue
                if self.reserve or not (self.queue and self._single()):
                    break  # reserve: every free agent the gang can use is held for it
        finally:
            self._pumping = False
        if not self.gangs:
            super().pump()

    def _single(self) -> bool:
        """Send the first waiting task (or, skills permitting, another) to a free agent."""
        task = self.queue.peek()
        cands = self.free if self.listing else self.candidates(task)
        if cands:
            self.queue.pop()
            self._send(self._select(task, cands), task)
            return True
        return not self.uniform_skills and self._dispatch_other()

    def _assemble(self, gang: Gang) -> bool:
        """Hold (or find) free distinct agents for ``gang``; send it once it has k."""
        k = len(gang.members)
        first = gang.members[0]
        held = {v.index for v in gang.reserved}
        cands = [
            v
            for v in (self.free if self.listing else self.candidates(first))
            if v.index not in held
        ]
        if not self.reserve and len(cands) < k:
            return False
        new: list[AgentState] = []
        while len(gang.reserved) + len(new) < k and cands:
            view = self._select(gang.members[len(gang.reserved) + len(new)], cands)
            cands.remove(view)
            new.append(view)
        if len(gang.reserved) + len(new) < k:  # reserve: hold what it found, wait for more
            for view in new:
                gang.reserved.append(view)
                self._hold(view, gang)
            return False
        chosen = [*gang.reserved, *new]
        ctx = self.ctx
        for view, member in zip(chosen, gang.members, strict=True):
            if view in gang.reserved:
                view.queue_length -= 1  # the placeholder gives way to the subtask itself
                ctx.release(self.agents[view.index])
            self._send(view, member)
        if ctx.tracing:
            ctx.log(
                "gang_start",
                f"bundle {gang.id}: {k} subtasks start together on "
                f"{', '.join(v.name for v in chosen)} after {ctx.now - gang.since:.4g} "
                f"assembling ({self.params.assembly})",
                first,
                agents=[v.name for v in chosen],
            )
        return True

    def _hold(self, view: AgentState, gang: Gang) -> None:
        """Reserve a slot of ``view`` for ``gang``: a placeholder that counts as a task."""
        view.queue_length += 1
        if view.listed and view.queue_length >= view.capacity:
            self._relist(view)
        self.ctx.reserve(self.agents[view.index])
        if self.ctx.tracing:
            self.ctx.log(
                "gang_reserve",
                f"bundle {gang.id} holds {view.name} idle ({len(gang.reserved)} of "
                f"{len(gang.members)})",
                gang.members[0],
                agent=view.name,
            )

    def _preempt(self, task: Task) -> bool:
        return False  # a displaced subtask would break its gang: no preemption here

    # -- reports ---------------------------------------------------------------------
    def on_done(self, sender: Actor, task: Task) -> None:
        if not self.gangs:
            super().on_done(sender, task)
            return
        view = self.views[sender.index]  # no hand-off short cut: a waiting gang may be first
        if self.track and task not in view.tasks:
            return
        self._forget(view, task)
        self.pump()

    def _mark(self, view: AgentState, up: bool) -> None:
        super()._mark(view, up)
        if up or not self.gangs:
            return
        gang = self.gangs[0]
        if view in gang.reserved:  # a held agent believed down: hold another instead
            gang.reserved.remove(view)
            view.queue_length -= 1
            self._relist(view)
            self.ctx.release(self.agents[view.index])
            if self.ctx.tracing:
                self.ctx.log(
                    "gang_release",
                    f"bundle {gang.id} releases {view.name}: believed down",
                    gang.members[0],
                    agent=view.name,
                )

"""Delegation chains: agents that pass on the tasks they should not keep.

A ``delegating`` agent is a :class:`~policies.agent.Worker` that looks at
each task reaching it (from the coordinator, or from a peer) and passes it on
when it should not keep it: all its slots are busy and its local queue holds
``queue_limit`` tasks (``full``; ``queue`` when the limit is above 0), or its
proficiency for the task's skills is below ``min_proficiency``
(``unskilled``). A task queued here and not started within
``reassign_after`` is recalled and passed on too (``recall``).

The protocol, one handler per message:

* ``delegate`` (agent to peer, carrying the task): the deciding agent holds
  the task for ``decision_delay`` (a timer), chooses by ``rule`` and sends it
  on; the message carries the sender's load. ``least_loaded`` picks the peer
  with the lowest load this agent has *heard of* (piggybacked on delegations,
  or gossiped every ``gossip`` time units to one peer in turn, message
  ``load``), and keeps the task when no known peer is lighter than itself;
  ``random`` picks a peer uniformly; ``coordinator`` hands the task back up.
  Peers are those with the task's skills (a static directory). Passing a task on
  (the decision delay, the hand-off, the choice, the hop limit, the load news)
  is :mod:`policies.passing`'s.
* Each pass is a hop (``task.hops``), up to ``max_hops``. An agent that
  should pass on a task at its limit applies ``on_max_hops``: ``keep`` it,
  hand it back to the ``coordinator`` (only if it came from a peer: a task
  the coordinator sent at its limit is kept, or it would circle), or
  ``abandon`` it.
* The coordinator's views stay right through three notices, each naming the
  agent it first sent the task to: ``moved`` (an agent keeps a delegated
  task), ``finished`` (a delegated task ended here; it replaces ``done``) and
  ``handback`` (back to the coordinator's queue). Notices are sent by the
  agent that knows the fact, so nothing waits on a reply; the coordinator
  orders them by hop number (see ``policies.coordinator``). A task the
  coordinator sent and that stays where it was sent costs no notice at all.

``task.handoff`` accumulates the time a task spends being passed between
agents: every decision delay and every hand-off message's latency.

Backpressure: an agent whose group has a ``queue_limit`` and holds that many
tasks (running plus queued) passes an arriving task on (``limit``); when it
cannot (no lighter peer known, the hop limit says keep, or it is down), the
task is rejected rather than kept beyond the limit (``policies.backpressure``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kossim.policy import Params
from kossim.sim.kernel import Actor, Timer
from kossim.sim.task import QUEUED, RENEGED, Task
from policies.agent import Worker
from policies.backpressure import held, refuse
from policies.passing import Handoff, PassingOn

__all__ = ["Delegating", "DelegatingParams", "Handoff"]


class DelegatingParams(Params):
    rule: Literal["least_loaded", "random", "coordinator"] = Field(
        default="least_loaded", description="where a passed task goes"
    )
    queue_limit: int = Field(
        default=0,
        ge=0,
        description="tasks queued here beyond which an arrival finding no free slot is "
        "passed on (0: pass on whenever every slot is busy)",
    )
    min_proficiency: float = Field(
        default=0.0, ge=0, description="pass on tasks whose skills this agent has below this"
    )
    max_hops: int = Field(default=3, ge=0, description="hand-offs a task may make")
    on_max_hops: Literal["keep", "coordinator", "abandon"] = Field(
        default="keep", description="what becomes of a task that should move past max_hops"
    )
    decision_delay: float = Field(
        default=0.0, ge=0, description="time a task is held while its next holder is chosen"
    )
    reassign_after: float | None = Field(
        default=None, gt=0, description="recall a task queued here and not started by then"
    )
    gossip: float | None = Field(
        default=None, gt=0, description="period of the load message sent to one peer in turn"
    )


class Delegating(PassingOn, Worker):
    """A worker that passes on the tasks it should not keep, along a chain of peers."""

    kind = "agent"
    id = "delegating"
    description = "pass a task on to a peer (or the coordinator) when full or unskilled"
    Params = DelegatingParams
    sends = (
        *Worker.sends,
        "delegate",
        "moved",
        "finished",
        "handback",
        "load",
    )
    #: What it tells its coordinator of tasks passed among agents (checked at load).
    tells_coordinator = ("moved", "finished", "handback")

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        p: DelegatingParams = self.params
        self.max_hops = p.max_hops  # read by the metrics: the hop distribution's rows
        self.know_peers(ctx)
        self.chain: dict[Task, Handoff] = {}  # tasks held here that came from a peer
        self.deciding: dict[Task, tuple[Timer, Handoff | None]] = {}
        self.recalls: dict[Task, Timer] = {}

    def held(self) -> list[Task]:
        return [*self.local, *self.deciding]

    # -- messages ---------------------------------------------------------------------
    def on_task(self, sender: Any, task: Task) -> None:
        """A task sent by the coordinator: keep it as a worker would, or pass it on."""
        if not self.ctx.up:  # no decision while down: it waits here, or is refused if full
            if not self.requeue and self._full():
                self._refuse(task, None)
            else:
                super().on_task(sender, task)
            return
        why = self._why_pass(task)
        if why is None:
            self._keep(task, None)
        else:
            self._pass(task, None, why)

    _on_task_bounded = on_task  # the limit is one more reason to pass a task on

    def on_delegate(self, sender: Actor, handoff: Handoff) -> None:
        """A task passed on by a peer, with the peer's load."""
        ctx = self.ctx
        task = handoff.task
        task.handoff += ctx.now
        self.loads.learned(sender.index, handoff.load)
        if not ctx.up:
            if self.requeue:  # unreachable: back up to the coordinator at once
                task.handoff -= ctx.now
                self._notify("handback", task, handoff)
            elif self._full():
                self._refuse(task, handoff)
            else:
                self._adopt(task, handoff)
                task.state = QUEUED
                self.local.push(task)
            return
        why = self._why_pass(task)
        if why is None:
            self._keep(task, handoff)
        else:
            self._pass(task, handoff, why)

    # -- deciding -----------------------------------------------------------------------
    def _why_pass(self, task: Task) -> str | None:
        """Why this agent should not keep ``task`` (``None``: it keeps it)."""
        p = self.params
        ctx = self.ctx
        if p.min_proficiency and ctx.profile.proficiency(task.skills) < p.min_proficiency:
            return "unskilled"
        if self._full():
            return "limit"
        if not ctx.free_slots and len(self.local) >= p.queue_limit:
            return "queue" if p.queue_limit else "full"
        return None

    def _reason(self, why: str, task: Task) -> str:
        p = self.params
        if why == "unskilled":
            prof = self.ctx.profile.proficiency(task.skills)
            return f"proficiency {prof:g} < {p.min_proficiency:g}"
        if why == "queue":
            return f"queue {len(self.local)} >= limit {p.queue_limit}"
        if why == "recall":
            return f"not started within {p.reassign_after:g}"
        if why == "limit":
            return f"holds {held(self)} of limit {self.ctx.queue_limit}"
        return why

    def _full(self) -> bool:
        """At the agent's physical ``queue_limit`` (running plus queued)."""
        limit = self.ctx.queue_limit
        return limit is not None and held(self) >= limit

    def _refuse(self, task: Task, handoff: Handoff | None) -> None:
        """Full, and no way to pass ``task`` on: it is rejected, and the coordinator
        hears of it as of any ending (``done``, or ``finished`` for a delegated task)."""
        refuse(self, task, self._reason("limit", task))
        self.chain.pop(task, None)
        if handoff is None:
            self.send(self.coordinator, "done", task)
        else:
            self._notify("finished", task, handoff)

    # -- keeping -------------------------------------------------------------------------
    def _adopt(self, task: Task, handoff: Handoff | None) -> None:
        """A task from a peer stays here: the coordinator hears where it is."""
        if handoff is not None and task not in self.chain:
            self.chain[task] = handoff
            handoff.moves += 1
            self._notify("moved", task, handoff)

    def _keep(self, task: Task, handoff: Handoff | None) -> None:
        """Serve ``task`` here: on a free slot, else in the local queue (if not full)."""
        ctx = self.ctx
        if self._full():
            self._refuse(task, handoff)
            return
        self._adopt(task, handoff)
        # A preemption reports its victim at once on an instant network, and the news may
        # bring a task straight to the freed slot: look again before starting.
        if (ctx.free_slots or (self.preemptive and self._preempt_for(task))) and ctx.free_slots:
            ctx.start(task)
            return
        task.state = QUEUED
        self.local.push(task)
        after = self.params.reassign_after
        if after is not None and task.hops < self.params.max_hops:
            self.recalls[task] = ctx.after(after, "recall", task)

    def _displaced(self, victim: Task) -> None:
        """As a worker, except that a victim that came from a peer goes back to a pull
        coordinator with the notice that names where the coordinator counts it."""
        handoff = self.chain.pop(victim, None)
        if self.pull and handoff is not None:
            victim.handoff -= self.ctx.now
            self._notify("handback", victim, handoff)
            return
        super()._displaced(victim)
        if not self.pull and handoff is not None:
            self.chain[victim] = handoff

    def on_recall(self, sender: Any, task: Task) -> None:
        """Timer: ``task`` waited ``reassign_after`` in the local queue; pass it on."""
        self.recalls.pop(task, None)
        if not self.ctx.up:
            return  # it is served after the repair
        self._unqueue(task)
        if self.ctx.tracing:
            self.ctx.log("recall", f"task {task.id} {self._reason('recall', task)}", task)
        self._pass(task, self.chain.get(task), "recall")

    def _unqueue(self, task: Task) -> None:
        self.local.remove(task)

    def _fill(self) -> None:
        local = self.local
        ctx = self.ctx
        recalls = self.recalls
        self.filling = True
        while local and ctx.free_slots:
            task = local.pop()
            timer = recalls.pop(task, None)
            if timer is not None:
                timer.cancel()
            ctx.start(task)
        self.filling = False

    def _notify(self, kind: str, task: Task, handoff: Handoff) -> None:
        news = (task, handoff.first, task.hops, handoff.moves)
        if kind == "moved":
            self.ctx.send(self.coordinator, kind, news)
        else:
            self.ctx.send(self.coordinator, kind, news, carries=task)

    # -- physics of the agent's own slots -----------------------------------------------
    def on_complete(self, task: Task) -> None:
        handoff = self.chain.pop(task, None)
        if handoff is None:
            super().on_complete(task)
            return
        if self.local:
            self._fill()
        self._notify("finished", task, handoff)

    def on_discard(self, task: Task) -> None:
        """A task that ended elsewhere left this agent: one that reneged after coming from
        a peer is reported with the notice that names where the coordinator counts it."""
        handoff = self.chain.pop(task, None) if task.state == RENEGED else None
        if handoff is None:
            super().on_discard(task)
            return
        self._notify("finished", task, handoff)
        if self.local and not self.filling:
            self._fill()

    def on_crash(self) -> None:
        if self.requeue:  # what this agent held is lost with it: no timer of it may fire
            ctx = self.ctx
            now = ctx.now
            for timer in self.recalls.values():
                timer.cancel()
            self.recalls.clear()
            deciding = list(self.deciding)
            for task, (timer, _) in self.deciding.items():
                timer.cancel()
                task.handoff += now
            self.deciding.clear()
            self.chain.clear()  # the coordinator reclaims these tasks itself
            super().on_crash()
            ctx.orphan(deciding)
            return
        super().on_crash()

    def on_repair(self, suspended: list[Task]) -> None:
        ctx = self.ctx
        if self.restarts and self.chain:  # delegated tasks out of attempts end here
            for t in [t for t in suspended if t in self.chain and t.attempts >= ctx.max_attempts]:
                suspended.remove(t)
                ctx.abandon(t)
                self._notify("finished", t, self.chain.pop(t))
        super().on_repair(suspended)

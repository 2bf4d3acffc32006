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
  Peers are those with the task's skills (a static directory).
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
cannot (no lighter peer known, or the hop limit says keep), the task is
rejected rather than kept beyond the limit (``policies.backpressure``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kossim.policy import Params
from kossim.sim.kernel import Actor, Timer
from kossim.sim.task import QUEUED, RENEGED, Task
from policies.agent import Worker
from policies.backpressure import held, refuse
from policies.peer_loads import PeerLoads

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


class Handoff:
    """What travels with a delegated task: where the coordinator sent it, how many
    ``moved`` notices it caused, the last agent that passed it and that agent's load."""

    __slots__ = ("first", "last", "load", "moves", "task")

    def __init__(self, task: Task, first: Actor) -> None:
        self.task = task
        self.first = first
        self.moves = 0
        self.last = first
        self.load = 0.0


class Delegating(Worker):
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
        self.me: Actor = ctx.actor
        self.peers: list[Actor] = ctx.peers
        n = len(self.peers) + 1
        self.capacity_of = [1] * n
        for peer in self.peers:
            self.capacity_of[peer.index] = ctx.profile_of(peer).capacity
        self._eligible: dict[tuple[str, ...], list[Actor]] = {}
        self._eligible_index: dict[tuple[str, ...], list[int]] = {}
        self.loads = PeerLoads(self.me.index, n, self._peer_indices)
        self.chain: dict[Task, Handoff] = {}  # tasks held here that came from a peer
        self.deciding: dict[Task, tuple[Timer, Handoff | None]] = {}
        self.recalls: dict[Task, Timer] = {}
        self._gossip_next = 0
        if p.gossip is not None and self.peers:
            ctx.after(p.gossip, "gossip")

    def held(self) -> list[Task]:
        return [*self.local, *self.deciding]

    def load(self) -> float:
        ctx = self.ctx
        return (len(ctx.running) + len(self.local)) / ctx.capacity

    # -- messages ---------------------------------------------------------------------
    def on_task(self, sender: Any, task: Task) -> None:
        """A task sent by the coordinator: keep it as a worker would, or pass it on."""
        if not self.ctx.up:
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

    def on_load(self, sender: Actor, load: float) -> None:
        self.loads.learned(sender.index, load)

    def on_gossip(self, sender: Any, payload: Any) -> None:
        """Timer: tell the next peer in turn this agent's load."""
        ctx = self.ctx
        if ctx.up:
            peer = self.peers[self._gossip_next]
            self._gossip_next = (self._gossip_next + 1) % len(self.peers)
            ctx.send(peer, "load", self.load())
        ctx.after(self.params.gossip, "gossip")

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

    def _pass(self, task: Task, handoff: Handoff | None, why: str) -> None:
        """Hold ``task`` for the decision delay, then send it on (or apply the hop limit)."""
        ctx = self.ctx
        if task.hops >= self.params.max_hops:
            self._at_limit(task, handoff, why)
            return
        task.state = QUEUED
        task.handoff -= ctx.now
        timer = ctx.after(self.params.decision_delay, "decided", (task, why))
        self.deciding[task] = (timer, handoff)

    def on_decided(self, sender: Any, decision: tuple[Task, str]) -> None:
        """Timer: the decision delay is over; send the task to the chosen holder."""
        task, why = decision
        _, handoff = self.deciding.pop(task)
        ctx = self.ctx
        if not ctx.up:  # failed meanwhile (resume or restart): it waits here for the repair
            task.handoff += ctx.now
            if self._full():
                self._refuse(task, handoff)
                return
            self._adopt(task, handoff)
            self.local.push(task)
            return
        target = self._choose(task, handoff, why)
        if target is None:
            task.handoff += ctx.now
            if ctx.tracing:
                ctx.log("keep", f"task {task.id} kept: {why}, no lighter peer known", task)
            self._keep(task, handoff)
            return
        self._hand_off(task, handoff or Handoff(task, self.me), target, why)

    def _hand_off(self, task: Task, handoff: Handoff, target: Actor, why: str) -> None:
        """One hop: ``task`` leaves this agent for ``target`` (a peer or the coordinator)."""
        ctx = self.ctx
        self.chain.pop(task, None)
        task.hops += 1
        if ctx.tracing:
            ctx.log(
                "delegate",
                f"task {task.id} {self.me.name} -> {target.name}: {self._reason(why, task)}",
                task,
                to=target.name,
                hops=task.hops,
            )
        if target is self.coordinator:
            self._notify("handback", task, handoff)
            return
        i = target.index
        loads = self.loads
        loads.learned(i, loads.known[i] + 1.0 / self.capacity_of[i])  # one task busier
        handoff.last = self.me
        handoff.load = self.load()
        ctx.send(target, "delegate", handoff, carries=task)

    def _choose(self, task: Task, handoff: Handoff | None, why: str) -> Actor | None:
        """The next holder by the rule; ``None`` keeps the task here."""
        rule = self.params.rule
        if rule == "coordinator":
            return self.coordinator
        cands = self._peers_for(task.skills)
        if not cands:
            return None
        last = handoff.last.index if handoff is not None else -1
        if rule == "random":
            if len(cands) == 1:
                return cands[0]
            rng = self.ctx.rng
            j = int(rng.integers(len(cands)))
            if cands[j].index == last:  # never straight back, when there is another peer
                j = (j + 1 + int(rng.integers(len(cands) - 1))) % len(cands)
            return cands[j]
        best = self.loads.lightest(task.skills, last)
        if why != "unskilled" and self.loads.known[best] >= self.load():
            return None  # nobody known is lighter than this agent
        return self.peers[best if best < self.me.index else best - 1]

    def _at_limit(self, task: Task, handoff: Handoff | None, why: str) -> None:
        """``task`` should move but has made ``max_hops`` hops: ``on_max_hops`` decides."""
        ctx = self.ctx
        mode = self.params.on_max_hops
        if mode == "coordinator" and handoff is None:
            mode = "keep"  # the coordinator sent it here at its limit: it had the last word
        if ctx.tracing:
            ctx.log(
                "max_hops",
                f"task {task.id} at {task.hops} hops ({self._reason(why, task)}): {mode}",
                task,
            )
        if mode == "keep":
            self._keep(task, handoff)
        elif mode == "coordinator":
            assert handoff is not None
            self.chain.pop(task, None)
            task.handoff -= ctx.now
            self._notify("handback", task, handoff)
        else:
            self.chain.pop(task, None)
            ctx.abandon(task)
            if handoff is None:
                ctx.send(self.coordinator, "done", task)
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

    # -- peers -----------------------------------------------------------------------------
    def _peers_for(self, skills: tuple[str, ...]) -> list[Actor]:
        """Peers able to serve ``skills`` at this agent's bar (static profiles, cached)."""
        got = self._eligible.get(skills)
        if got is None:
            bar = self.params.min_proficiency
            got = self._eligible[skills] = [
                peer
                for peer in self.peers
                if (prof := self.ctx.profile_of(peer).proficiency(skills)) > 0 and prof >= bar
            ]
        return got

    def _peer_indices(self, skills: tuple[str, ...]) -> list[int]:
        got = self._eligible_index.get(skills)
        if got is None:
            got = self._eligible_index[skills] = [p.index for p in self._peers_for(skills)]
        return got

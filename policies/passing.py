"""How a delegating agent passes a task on: the decision delay, the hand-off, the hop
limit, and where the task goes (its peers, what it hears of their loads, the rule);
mixed into :class:`policies.delegation.Delegating`, which decides *whether* to pass.

* **A pass.** The task is held ``decision_delay`` (a timer, ``decided``), then
  sent to the chosen holder (``delegate`` to a peer, carrying a :class:`Handoff`
  and the sender's load; ``handback`` to the coordinator), one hop more
  (``task.hops``). An agent that fails meanwhile keeps the task for its repair.
* **The hop limit.** A task that should move at ``max_hops`` hops meets
  ``on_max_hops``: ``keep``, ``coordinator`` (only if it came from a peer) or
  ``abandon``.
* **The directory.** A task's peers are the agents with its skills at this agent's
  ``min_proficiency`` bar (static profiles, cached per skill set).
* **Load news.** An agent knows its peers' loads only from messages: each
  delegation carries the sender's load, and with ``gossip`` the agent tells one
  peer in turn its load every ``gossip`` time units (``load``). A delegation
  counts its target one task busier at once (:class:`policies.peer_loads.PeerLoads`).
* **The rule.** ``least_loaded`` picks the lightest peer it has heard of and keeps
  the task when none is lighter than itself (unless it is unskilled for it);
  ``random`` picks a peer uniformly, never straight back to the one it came from
  when there is another; ``coordinator`` hands the task back up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kossim.sim.kernel import Actor, Timer
from kossim.sim.task import QUEUED, Task
from policies.peer_loads import PeerLoads

__all__ = ["Handoff", "PassingOn"]


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


class PassingOn:
    """Passing a task on: the decision delay, the hand-off, the hop limit, the peer
    directory, the load news and the choice of the next holder."""

    ctx: Any
    params: Any
    local: Any
    coordinator: Actor
    chain: dict[Task, Handoff]
    deciding: dict[Task, tuple[Timer, Handoff | None]]

    if TYPE_CHECKING:

        def _reason(self, why: str, task: Task) -> str: ...
        def _full(self) -> bool: ...
        def _refuse(self, task: Task, handoff: Handoff | None) -> None: ...
        def _adopt(self, task: Task, handoff: Handoff | None) -> None: ...
        def _keep(self, task: Task, handoff: Handoff | None) -> None: ...
        def _notify(self, kind: str, task: Task, handoff: Handoff) -> None: ...

    # -- the peers and their loads -------------------------------------------------------
    def know_peers(self, ctx: Any) -> None:
        """Learn the peers (static) and start gossiping loads if ``gossip`` is set."""
        self.me: Actor = ctx.actor
        self.peers: list[Actor] = ctx.peers
        n = len(self.peers) + 1
        self.capacity_of = [1] * n
        for peer in self.peers:
            self.capacity_of[peer.index] = ctx.profile_of(peer).capacity
        self._eligible: dict[tuple[str, ...], list[Actor]] = {}
        self._eligible_index: dict[tuple[str, ...], list[int]] = {}
        self.loads = PeerLoads(self.me.index, n, self._peer_indices)
        self._gossip_next = 0
        gossip = self.params.gossip
        if gossip is not None and self.peers:
            ctx.after(gossip, "gossip")

    def load(self) -> float:
        ctx = self.ctx
        return (len(ctx.running) + len(self.local)) / ctx.capacity

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

    # -- a pass ---------------------------------------------------------------------------
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

    # -- the next holder ------------------------------------------------------------------
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

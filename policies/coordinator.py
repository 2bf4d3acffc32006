"""Coordinator behaviours: where decisions run, on views only as fresh as their messages.

The built-in ``queueing`` coordinator owns the waiting queue, a view of each
agent and the policy's ``dispatch``, ``routing`` and ``queue`` components.
Under pull dispatch tasks wait here until a view shows a free slot; under
push dispatch each task is routed on arrival. Every task it sends, and every
report it receives, is a message over the network.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from kossim.policy import Behaviour, Params
from kossim.sim.agent import AgentState
from kossim.sim.kernel import Actor
from kossim.sim.pool import Pool
from kossim.sim.task import RUNNING, WAITING, SplitQueue, Task, TaskQueue, make_queue
from policies.arbitrated import hook_arbiter
from policies.backpressure import bounded
from policies.candidate_pools import CandidatePools
from policies.failure_views import FailureViews
from policies.notices import DelegationNotices
from policies.retry_queue import hook_retry
from policies.role_based import hook_roles, role_tiers
from policies.speculation import Speculating, speculate

__all__ = ["Queueing", "QueueingParams"]


class QueueingParams(Params):
    queue_limit: int | None = Field(
        default=None,
        ge=0,
        description="finite waiting queue: the most tasks waiting here; an arrival that "
        "would wait beyond it is rejected (0: no waiting room). None: unbounded",
    )


class Queueing(CandidatePools, DelegationNotices, FailureViews, Speculating, Behaviour):
    """One waiting queue, a view per agent, and the policy's dispatch, routing and queue.

    Pull dispatch (``central``) keeps tasks here until a view shows a free
    slot, skipping a head that no free agent can serve for the first task
    that one can; a preemptive discipline displaces the worst running task.
    Push dispatch routes each task on arrival. A task reported lost with a
    failed agent re-enters, or is abandoned once out of attempts.

    Backpressure (:mod:`policies.backpressure`): with ``queue_limit`` an arrival
    that would wait beyond the limit is rejected; under push dispatch, agents at
    their own ``queue_limit`` are no candidates, and a task no agent up has room
    for is rejected.
    """

    kind = "coordinator"
    id = "queueing"
    description = "a waiting queue and per-agent views; dispatch, routing and queue components"
    sends: tuple[str, ...] = ("task",)
    Params: ClassVar[type[Params]] = QueueingParams
    #: Optional components it builds at its start: a policy may name them.
    consults: ClassVar[tuple[str, ...]] = ("retry",)

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        self.router = ctx.component("routing")
        # Only the router's own class can vouch for it (a subclass may count its decisions).
        self._ask_lone = not vars(type(self.router)).get("lone_is_chosen", False)
        discipline = self.discipline = ctx.component("queue")
        pull = self.pull = self.pulls(ctx)
        self.agents: list[Actor] = ctx.agents
        # A router that declares ``indexes`` gets candidates it can query in O(log N)
        # (kossim.sim.pool): its views then report their load to the pools they are in.
        self.indexes = tuple(getattr(self.router, "indexes", ()))
        kinds = set(ctx.task_skills)
        tiers = role_tiers(ctx)
        state = self._view_class(ctx, pull, bool(tiers))
        self.views: list[AgentState] = [
            state(p.index, p.name, p.group, p.speed, p.capacity, p.skills, p.trust, p.limit)
            for p in ctx.profiles
        ]
        self.send = ctx.send
        # What messages told of each agent's failures: the last failure it recovered from
        # (``repaired``, ``trust``) and the last one known for certain (an oracle's
        # ``suspect``, ``bounce``). News of an older failure never overrides news of a newer
        # one, whatever order it arrives in. A heartbeat detector's suspicion is a verdict
        # of its own, held until it trusts the agent again.
        self.recovered = [0] * len(self.views)
        self.failed = [0] * len(self.views)
        self.suspected = [False] * len(self.views)
        self.requeue = ctx.failure_mode == "requeue"
        self.n_down = 0
        self._pumping = False
        self._skilled: dict[tuple[str, ...], list[AgentState]] = {}
        # Push: per skill set, the agents believed up, kept as they fail and recover.
        self._pools: dict[tuple[str, ...], Pool] = {}
        self._watch_slots()
        self.uniform_skills = len({tuple(self._skilled_for(k)) for k in kinds}) <= 1
        self.split = pull and not self.uniform_skills
        self.queue: TaskQueue = SplitQueue(discipline) if self.split else make_queue(discipline)
        # Pull + uniform skills: the free agents are kept listed (in index order) instead
        # of being found by a scan on every decision (not with role fallback tiers).
        self.listing = pull and self.uniform_skills and not tiers
        # Which task was sent where: a preemptive pull coordinator picks its victim among
        # them; under requeue, the tasks of a suspected agent are re-sent.
        self.track = (pull and bool(discipline.preemptive)) or self.requeue
        self.free = Pool(
            self.views, (), next(iter(kinds)) if len(kinds) == 1 else None, self.indexes
        )
        # Tasks delegated among agents: task -> [view counting it, hand-off of the last
        # "moved" applied, "moved" notices seen, notices sent (known at the task's end)].
        self.delegated: dict[Task, list[int]] = {}
        # Only agents with the (common) skills ever enter the free list.
        self._listable = {v.index for v in self._skilled_for(next(iter(kinds)))}
        if self.listing:
            for v in self._skilled_for(next(iter(kinds))):
                self._relist(v)
        # Pull with listed free slots, no preemption and this class's own pump: an arrival
        # that finds no free slot only joins the queue (the pump would stop at once).
        own_pump = self._own_pump = type(self).pump is Queueing.pump
        self._queue_only = self.listing and not discipline.preemptive and own_pump
        bounded(self)
        hook_roles(self, ctx, tiers)
        hook_retry(self, ctx)
        speculate(self, ctx)
        hook_arbiter(self, ctx)  # last: the arbiter is asked before the retry rule

    def pulls(self, ctx: Any) -> bool:
        """Whether tasks wait here for a free slot (pull) rather than leave on arrival (push):
        the policy's ``dispatch`` says; a subclass that decides otherwise overrides this."""
        return bool(ctx.component("dispatch").pull)

    # -- candidates -------------------------------------------------------------
    def _skilled_for(self, skills: tuple[str, ...]) -> list[AgentState]:
        got = self._skilled.get(skills)
        if got is None:
            got = self._skilled[skills] = [v for v in self.views if v.proficiency(skills) > 0]
        return got

    def _relist(self, v: AgentState) -> None:
        free = v.up and v.queue_length < v.capacity and v.index in self._listable
        if free != v.listed and self.listing:
            v.listed = free
            if free:
                self.free.enter(v)
            else:
                self.free.leave(v)

    def candidates(self, task: Task) -> list[AgentState]:
        if self.listing:
            return self.free
        if self.free_pools is not None:
            return self._free_pool(task.skills)
        if self.pull:
            base = self._skilled_for(task.skills)
            return [v for v in base if v.up and v.queue_length < v.capacity]
        return self._pool_for(task.skills)

    # -- sending ------------------------------------------------------------------
    def held(self) -> list[Task]:
        """Tasks waiting here (for conservation checks)."""
        return list(self.queue)

    def on_arrival(self, sender: Any, task: Task) -> None:
        """A new task enters the system here."""
        if not self.pull:
            self.route(task)
        elif self.listing and self.free and not self.queue:
            self._send(self._select(task, self.free), task)  # a free slot and nobody waiting
        elif self._queue_only and not self.free:
            self.queue.push(task)  # no free slot: pump() would send nothing
        else:
            self.queue.push(task)
            self.pump()

    def _send(self, view: AgentState, task: Task) -> None:
        view.queue_length += 1
        svc = task.svc = task.work / view.speed if not task.skills else view.service_time(task)
        view.work_outstanding += svc
        if self.track:
            view.tasks.add(task)
        if view.listed and view.queue_length >= view.capacity:
            self._relist(view)
        self.send(self.agents[view.index], "task", task)

    def _select(self, task: Task, cands: list[AgentState]) -> AgentState:
        """The router's choice among ``cands``, which must be one of them.

        The check costs O(1): a candidate is recognised by the properties that
        put it on the list, not by a scan of the list.
        """
        chosen = self.router.select(task, cands, self.ctx.now)
        if chosen is not cands[0] and not self._is_candidate(chosen, task):
            self._not_offered(chosen, task, len(cands))
        if self.ctx.tracing:
            queues = [c.queue_length for c in cands[:12]]
            why = getattr(self.router, "reason", "")  # a router's own account, if it keeps one
            self.ctx.log(
                "route",
                f"task {task.id} -> {chosen.name}: {type(self.router).id}, queue "
                f"{chosen.queue_length} of {queues}{' ...' if len(cands) > 12 else ''}"
                f"{'; ' + why if why else ''}",
                task,
                agent=chosen.name,
            )
        return chosen

    def _not_offered(self, chosen: Any, task: Task, offered: int) -> None:
        raise RuntimeError(
            f"routing component {type(self.router).id!r} chose {chosen!r} for task "
            f"{task.id}, which is not among the {offered} candidates it was offered"
        )

    def _is_candidate(self, v: Any, task: Task) -> bool:
        index = getattr(v, "index", None)
        if not (isinstance(index, int) and 0 <= index < len(self.views)):
            return False
        if self.views[index] is not v or not v.up:
            return False
        if self.listing:
            return bool(v.listed)
        if v.proficiency(task.skills) <= 0:
            return False
        return v.queue_length < v.capacity if self.pull else True

    def route(self, task: Task) -> None:
        """Push dispatch: choose an agent now, or hold the task while none is up."""
        cands = self.candidates(task)
        if not cands:
            task.state = WAITING
            self.queue.push(task)
            return
        self._send(self._select(task, cands), task)

    def pump(self) -> None:
        """Pull dispatch: send waiting tasks while views show free slots."""
        if self._pumping:
            return  # re-entered through an instant message; the outer loop goes on
        self._pumping = True
        try:
            q = self.queue
            listing = self.listing
            while q:
                task = q.peek()
                cands = self.free if listing else self.candidates(task)
                if not cands:
                    if self.discipline.preemptive and self._preempt(task):
                        continue
                    if self.uniform_skills or not self._dispatch_other():
                        break
                    continue
                q.pop()
                self._send(self._select(task, cands), task)
        finally:
            self._pumping = False

    def _dispatch_other(self) -> bool:
        """Skip the head: send the first waiting task some free, skilled agent can take."""
        queue = self.queue
        assert isinstance(queue, SplitQueue)
        best: tuple[tuple[Any, int, int], Task, list[AgentState]] | None = None
        for head in queue.heads():
            cands = self.candidates(head)
            if cands and (best is None or queue.order(head) < best[0]):
                best = (queue.order(head), head, cands)
        if best is None:
            return False
        _, task, cands = best
        queue.pop_head(task)
        self._send(self._select(task, cands), task)
        return True

    def _preempt(self, task: Task) -> bool:
        """Pull + preemptive discipline: displace the worst running task, if worse than ``task``."""
        key = self.discipline.key
        worst: tuple[Any, int, int] | None = None
        where: AgentState | None = None
        for view in self._skilled_for(task.skills):
            if not view.up:
                continue
            self.ctx.progress(self.agents[view.index])
            for t in view.tasks:
                if t.state == RUNNING and (worst is None or (key(t), t.id, t.copy) > worst):
                    worst, where = (key(t), t.id, t.copy), view
        if where is None or worst is None or not key(task) < worst[0]:
            return False
        self.queue.pop()
        self._send(where, task)
        return True

    # -- reports from agents ---------------------------------------------------------
    def _forget(self, view: AgentState, task: Task) -> None:
        if self.track:
            if task not in view.tasks:
                return  # written off already, when the agent was suspected
            view.tasks.discard(task)
        view.queue_length -= 1
        view.work_outstanding = view.work_outstanding - task.svc if view.queue_length else 0.0
        if self.listing and not view.listed:
            self._relist(view)

    def on_done(self, sender: Actor, task: Task) -> None:
        """An agent reports ``task`` ended (completed, abandoned, or a copy discarded)."""
        view = self.views[sender.index]
        if self.track and task not in view.tasks:
            return  # written off when the agent was suspected: the view forgot it then
        if self.listing and self.queue and view.up and not self.free and not self._pumping:
            # Hand-off: in a pull busy period the slot that just freed is the only free one
            # (a free slot and a waiting task never coexist after a pump), so the head goes
            # to it without listing and unlisting it: the same decision, cheaper.
            view.queue_length -= 1
            view.work_outstanding = view.work_outstanding - task.svc if view.queue_length else 0.0
            if self.track:
                view.tasks.discard(task)
            head = self.queue.pop()
            if self.ctx.tracing:
                self._send(self._select(head, [view]), head)
                return
            # _select() inlined (untraced: it logs nothing). The router still chooses from the
            # one candidate, so that one with state or draws sees every decision, unless it
            # declares that a lone candidate is its choice with no draw (``lone_is_chosen``).
            if self._ask_lone:
                chosen = self.router.select(head, [view], self.ctx.now)
                if chosen is not view:  # no view is listed (no free slot): none else is offered
                    self._not_offered(chosen, head, 1)
            self._send(view, head)
            return
        self._forget(view, task)
        if self.pull and (self.queue or not self._own_pump):  # this pump sends from the queue
            self.pump()

    def on_returned(self, sender: Actor, task: Task) -> None:
        """A preempted task comes back to this queue (pull dispatch)."""
        self._forget(self.views[sender.index], task)
        self.reenter(task)

    def on_bounce(self, sender: Actor, news: tuple[Task, int]) -> None:
        """A task sent to an agent that is down comes back undelivered."""
        task, incarnation = news
        i = sender.index
        self.failed[i] = max(self.failed[i], incarnation)
        self._judge(i)
        self._forget(self.views[i], task)
        self.attempt_failed(task, "bounced")

    def on_renege(self, sender: Any, task: Task) -> None:
        """The engine: ``task`` ran out of patience while waiting (recorded already); it
        leaves this queue now, if it is here, rather than take a dispatch later."""
        try:
            self.queue.remove(task)
        except (ValueError, KeyError):
            return  # not in the queue (an auction holds it, or it is on its way)
        if self.ctx.tracing:
            self.ctx.log("withdraw", f"task {task.id} leaves the waiting queue: patience", task)

    def reenter(self, task: Task) -> None:
        task.state = WAITING
        if self.pull:
            self.queue.push(task)
            self.pump()
        else:
            self.route(task)

    def _mark(self, view: AgentState, up: bool) -> None:
        if view.up != up:
            view.up = up
            self.n_down += -1 if up else 1
            self._relist(view)
            self._pools_mark(view, up)

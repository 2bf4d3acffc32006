"""The coordinator: where decisions run, on a view only as fresh as its messages.

It owns the waiting queue, the per-agent views and the policy components.
Under pull dispatch tasks wait here until a view shows a free slot; under
push dispatch each task is routed on arrival. Every task it sends, and every
report it receives, crosses the network.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

from simpy.events import Timeout

from kossim.sim.agent import Agent, AgentState
from kossim.sim.task import (
    ORPHANED,
    RUNNING,
    TRANSIT,
    WAITING,
    SplitQueue,
    Task,
    TaskQueue,
    make_queue,
)

if TYPE_CHECKING:
    from kossim.sim.world import World

__all__ = ["Coordinator"]


class Coordinator:
    """Queue, views and policies of one run."""

    def __init__(self, world: World, router: Any, discipline: Any, pull: bool) -> None:
        self.world = world
        self.router = router
        self.discipline = discipline
        self.pull = pull
        self.agents: list[Agent] = world.agents
        self.views: list[AgentState] = [a.view for a in world.agents]
        self.n_down = 0
        self._pumping = False
        self._skilled: dict[tuple[str, ...], list[AgentState]] = {}
        kinds = {t.skills for t in world.task_types}
        self.uniform_skills = len({tuple(self._skilled_for(k)) for k in kinds}) <= 1
        self.split = pull and not self.uniform_skills
        self.queue: TaskQueue = SplitQueue(discipline) if self.split else make_queue(discipline)
        # Pull + uniform skills: the free agents are kept listed (in index order) instead
        # of being found by a scan on every decision.
        self.listing = pull and self.uniform_skills
        # Only a preemptive pull coordinator needs to know which task runs where.
        self.track = pull and bool(discipline.preemptive)
        self.free: list[AgentState] = []
        # Only agents with the (common) skills ever enter the free list.
        self._listable = {v.index for v in self._skilled_for(next(iter(kinds)))}
        if self.listing:
            for v in self._skilled_for(next(iter(kinds))):
                self._relist(v)

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
                bisect.insort(self.free, v, key=_index)
            else:
                self.free.remove(v)

    def candidates(self, task: Task) -> list[AgentState]:
        if self.listing:
            return self.free
        base = self._skilled_for(task.skills)
        if self.pull:
            return [v for v in base if v.up and v.queue_length < v.capacity]
        return [v for v in base if v.up] if self.n_down else base

    # -- sending ------------------------------------------------------------------
    def arrive(self, task: Task) -> None:
        if not self.pull:
            self.route(task)
        elif self.listing and self.free and not self.queue:
            free = self.free  # fast path: a free slot and nobody waiting
            self._send(free[0] if len(free) == 1 else self._select(task, free), task)
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
        agent = self.agents[view.index]
        w = self.world
        net = w.net
        if net.instant:  # inlined Net.send: the hot path of every dispatch
            if w.env._now >= net.measure_from:
                net.messages += 1
            agent.receive(task)
        else:
            task.state = TRANSIT
            w.transit.add(task)
            w.net.send(w.coord_node, agent.node, self._arrive_at, (agent, task))

    def _arrive_at(self, payload: tuple[Agent, Task]) -> None:
        agent, task = payload
        self.world.transit.discard(task)
        agent.receive(task)

    def _select(self, task: Task, cands: list[AgentState]) -> AgentState:
        if len(cands) == 1:
            return cands[0]
        return self.router.select(task, cands, self.world.env._now)

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
        best: tuple[tuple[Any, int], Task, list[AgentState]] | None = None
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
        now = self.world.env._now
        worst: tuple[Any, int] | None = None
        where: AgentState | None = None
        for view in self._skilled_for(task.skills):
            if not view.up:
                continue
            self.agents[view.index]._refresh(now)
            for t in view.tasks:
                if t.state == RUNNING and (worst is None or (key(t), t.id) > worst):
                    worst, where = (key(t), t.id), view
        if where is None or worst is None or not key(task) < worst[0]:
            return False
        self.queue.pop()
        self._send(where, task)
        return True

    # -- reports from agents ---------------------------------------------------------
    def _forget(self, agent: Agent, task: Task) -> None:
        view = agent.view
        view.queue_length -= 1
        view.work_outstanding = view.work_outstanding - task.svc if view.queue_length else 0.0
        view.tasks.discard(task)
        if self.listing and not view.listed:
            self._relist(view)

    def completed(self, task: Task) -> None:
        view = self.views[task.agent]
        if self.listing and self.queue and view.up and not self.free and not self._pumping:
            # Hand-off: in a pull busy period the slot that just freed is the only free one
            # (a free slot and a waiting task never coexist after a pump), so the head goes
            # to it without listing and unlisting it: the same decision, cheaper.
            view.queue_length -= 1
            view.work_outstanding = view.work_outstanding - task.svc if view.queue_length else 0.0
            if self.track:
                view.tasks.discard(task)
            self._send(view, self.queue.pop())
            return
        self._forget(self.agents[task.agent], task)
        if self.pull:
            self.pump()

    def returned(self, agent: Agent, task: Task) -> None:
        """A preempted task comes back to the coordinator queue (pull dispatch)."""
        self._travel_back(agent, task, self._take_back)

    def _take_back(self, payload: tuple[Agent, Task]) -> None:
        agent, task = payload
        self.world.transit.discard(task)
        self._forget(agent, task)
        self.reenter(task)

    def bounce(self, agent: Agent, task: Task) -> None:
        """A task sent to an agent that is down comes back undelivered."""
        self._travel_back(agent, task, self._bounced)

    def _bounced(self, payload: tuple[Agent, Task]) -> None:
        agent, task = payload
        self.world.transit.discard(task)
        if not agent.up:
            self._mark(agent.view, up=False)
        self._forget(agent, task)
        self.reenter(task)

    def _travel_back(self, agent: Agent, task: Task, deliver: Any) -> None:
        w = self.world
        task.state = TRANSIT if not w.net.instant else ORPHANED
        w.transit.add(task)
        w.net.send(agent.node, w.coord_node, deliver, (agent, task))

    def reenter(self, task: Task) -> None:
        task.state = WAITING
        if self.pull:
            self.queue.push(task)
            self.pump()
        else:
            self.route(task)

    # -- failures -------------------------------------------------------------------
    def failure_noticed(self, agent: Agent, epoch: int) -> None:
        """Schedule the moment the coordinator learns that ``agent`` failed."""
        w = self.world
        ev = Timeout(w.env, w.detect_delay(), (agent, epoch))
        ev.callbacks.append(self._detected)

    def _detected(self, ev: Timeout) -> None:
        agent, epoch = ev._value
        if agent.epoch == epoch and not agent.up:
            self._mark(agent.view, up=False)
        w = self.world
        for task in agent.take_orphans():
            self._forget(agent, task)
            if task.fresh and task.attempts >= w.max_attempts:
                w.abandon(task)
            else:
                self.reenter(task)

    def repaired(self, agent: Agent) -> None:
        if not agent.up:
            return  # failed again before the news arrived
        self._mark(agent.view, up=True)
        if self.pull:
            self.pump()
        else:
            for task in self.queue.drain():
                self.route(task)

    def _mark(self, view: AgentState, up: bool) -> None:
        if view.up != up:
            view.up = up
            self.n_down += -1 if up else 1
            self._relist(view)

    def live_tasks(self) -> list[Task]:
        return list(self.queue)


def _index(v: AgentState) -> int:
    return v.index

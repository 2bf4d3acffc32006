"""Backpressure: finite buffers that refuse work instead of growing a backlog.

Two buffers can be finite. An agent holds at most its group's ``queue_limit``
tasks, running plus queued (a physical property of the agent, the K of
M/M/c/K); the ``queueing`` coordinator's waiting queue holds at most its
``queue_limit`` parameter (a property of that behaviour: a contract-net
coordinator holds auctions, not a queue). What a full buffer does is the
behaviour's decision, logged with its reason:

* the coordinator rejects an arrival that would wait beyond its limit; under
  push dispatch it offers a task only to agents its views show with room
  (the limits are static facts, like capacity), and rejects a task when
  every agent up is full (a task waits here only while no agent is up); the
  agents with room are a pool kept as queues cross their limits
  (:meth:`~policies.candidate_pools.CandidatePools.with_room`), not a scan;
* a ``worker`` agent that a task reaches while full (its coordinator's view
  was stale) refuses it: the task is rejected and the coordinator told;
* a ``delegating`` agent passes it on to a peer (``policies.delegation``), and
  rejects it only when it cannot: no lighter peer known, the hop limit, or
  the agent is down (a down agent decides nothing).

A rejected task ends in the terminal state ``REJECTED`` (metrics ``rejected``
and ``rejection_rate``), so conservation reads arrived = completed +
abandoned + rejected + in_flight. Under pull dispatch the coordinator's limit
governs admissions: a task the system already took (returned by a
preemption, bounced by a failure, handed back by a delegating agent)
re-enters its queue regardless; under push a re-entering task is routed, and
needs room, like an arrival.

Nothing here runs unless a limit is configured: :func:`bounded` and
:func:`bounded_worker` swap the bounded handlers in at the start of the run,
so the default path pays no test per task.
"""

from __future__ import annotations

from typing import Any

from kossim.sim.task import WAITING, Task

__all__ = ["bounded", "bounded_worker", "held", "refuse"]


def bounded(coord: Any) -> None:
    """Install the bounded arrival and routing of a ``queueing`` coordinator, if needed."""
    limit = getattr(coord.params, "queue_limit", None)
    agents_bounded = any(v.limit is not None for v in coord.views)
    coord.queue_limit = limit
    if limit is None and not agents_bounded:
        return
    if coord.pull:
        if limit is not None:  # pull never sends an agent more than its slots
            coord.on_arrival = _PullArrival(coord, limit)
    elif type(coord).route is _route_of(coord):  # a subclass that routes its own way keeps it
        coord.route = _PushRoute(coord, limit)  # on_arrival and reenter call it


def _route_of(coord: Any) -> Any:
    from policies.coordinator import Queueing  # here: coordinator imports this module

    return Queueing.route


def _reject(coord: Any, task: Task, why: str) -> None:
    ctx = coord.ctx
    if ctx.tracing:
        ctx.log("refuse", f"task {task.id} rejected: {why}", task)
    ctx.reject(task)


class _PullArrival:
    """Pull dispatch with a finite waiting queue: an arrival that would wait beyond
    ``limit`` is rejected (tail drop)."""

    __slots__ = ("coord", "limit")

    def __init__(self, coord: Any, limit: int) -> None:
        self.coord = coord
        self.limit = limit

    def __call__(self, sender: Any, task: Task) -> None:
        coord = self.coord
        q = coord.queue
        if coord.listing:  # uniform skills: a task waits only when every slot is busy
            if coord.free and not q:
                coord._send(coord._select(task, coord.free), task)
            elif len(q) >= self.limit:
                _reject(coord, task, f"waiting queue full ({len(q)} of limit {self.limit})")
            else:
                q.push(task)
                coord.pump()
            return
        q.push(task)  # skills differ: whether it waits only the pump knows
        coord.pump()
        if task.state == WAITING and len(q) > self.limit:
            q.remove(task)
            _reject(coord, task, f"waiting queue full ({len(q)} of limit {self.limit})")


class _PushRoute:
    """Push dispatch with finite buffers: route to an agent with room, else reject; hold
    a task only while no skilled agent is up, within the coordinator's own limit."""

    __slots__ = ("coord", "gated", "limit")

    def __init__(self, coord: Any, limit: int | None) -> None:
        from policies.coordinator import Queueing  # here: coordinator imports this module

        self.coord = coord
        self.limit = limit
        # Whether the coordinator's own candidates are what its gated pools reproduce.
        method = type(coord).candidates
        self.gated = method is Queueing.candidates or getattr(method, "gated", False)

    def __call__(self, task: Task) -> None:
        coord = self.coord
        cands = coord.candidates(task)
        if cands:
            room = self._with_room(task, cands)
            if room:
                coord._send(coord._select(task, room), task)
            else:
                _reject(coord, task, f"every agent up is full ({len(cands)} at their limit)")
            return
        q = coord.queue
        if self.limit is not None and len(q) >= self.limit:
            _reject(coord, task, f"no agent up and the waiting queue is full ({len(q)})")
            return
        task.state = WAITING
        q.push(task)

    def _with_room(self, task: Task, cands: Any) -> Any:
        """Of ``cands``, the agents with room under their limit: the coordinator's gated
        pool when its candidates are its own (not filtered by a hook such as role tiers)."""
        coord = self.coord
        if self.gated and "candidates" not in vars(coord):
            return coord._gated(task.skills, room=True, gate=coord._gate_of(task))
        return [v for v in cands if v.limit is None or v.queue_length < v.limit]


def bounded_worker(worker: Any) -> None:
    """Install the bounded ``on_task`` of an agent behaviour whose agent has a limit.

    The behaviour's ``_on_task_bounded`` decides what a full agent does; a worker
    refuses (:func:`refuse`).
    """
    if worker.ctx.queue_limit is not None:
        worker.on_task = worker._on_task_bounded


def held(worker: Any) -> int:
    """Tasks the agent holds: on its slots and in its local queue."""
    return len(worker.ctx.running) + len(worker.local)


def refuse(worker: Any, task: Task, why: str) -> None:
    """A full agent rejects ``task`` and tells the coordinator (its view counted it)."""
    ctx = worker.ctx
    if ctx.tracing:
        ctx.log("refuse", f"task {task.id} refused by {ctx.name}: {why}", task)
    ctx.reject(task)

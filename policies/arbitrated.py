"""A coordinator that asks its policy's arbiter at high-stakes events, and carries out the answer.

:func:`hook_arbiter` installs, at the start of a run whose policy names an
``arbiter``, the arbitrated versions of three of the ``queueing``
coordinator's steps (nothing is installed otherwise, so a policy without an
arbiter pays nothing):

* ``failed``: an attempt of a task was lost with its agent (``requeue``:
  reclaimed or written off). ``wait``: the default (re-enter, or abandon out
  of attempts); ``abort``: abandon now; ``escalate``: raise its priority, then
  the default; ``reassign``: send it now, even out of attempts, to the skilled
  agent believed up with the shortest queue (not the one it failed on, with
  ``exclude``), or re-enter the dispatch if there is none.
* ``deadline_risk`` (pull dispatch, an arbiter with ``risk_slack``): a timer
  per waiting task with a deadline fires when its slack (deadline - now - its
  service time on the fastest skilled agent) reaches ``risk_slack``, and, if
  the task still waits, again when the slack reaches 0. ``abort``: out of the
  queue, abandoned; ``escalate``: re-queued at its raised priority;
  ``reassign``: sent now to the skilled agent believed up with the shortest
  queue (into its local queue); ``wait``: the next check (``recheck`` sets it).
* ``failed`` at a ``worker`` agent (``restart``: the attempt of a task suspended by
  the crash is lost at the repair): ``wait``: the default (start over, or abandon
  out of attempts); ``abort``: abandon; ``escalate``: raise its priority, then the
  default; ``reassign``: start over elsewhere: the task goes back to the coordinator
  (``returned``), which dispatches it anew (as it would a preempted task: ``exclude``
  is not known there).
* ``no_bids`` (``contract_net``): an auction closed without a usable bid.
  ``wait``: announce again after the back-off; ``abort``: abandon;
  ``escalate``: raise its priority, then announce again; ``reassign``: award it
  to the skilled agent believed up with the shortest queue without an auction.

Raising a priority lowers ``task.priority`` by the decision's ``step`` (lower
tiers are served first by ``priority`` queues; a FIFO queue keeps its order).
The task's recorded priority, the ``priority=K`` scope of its metrics, is its
type's, whatever it was raised to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kossim.arbiter import Decision
from kossim.sim.kernel import Actor
from kossim.sim.task import WAITING, Task
from policies.retry_queue import MAY_STILL_RUN

__all__ = ["hook_arbiter", "hook_worker_arbiter", "send_elsewhere", "shortest"]

_INF = float("inf")
_TINY = 1e-9  # a slack this close to 0 is 0 (timers set at the slack's zero land there)


def hook_arbiter(coord: Any, ctx: Any) -> None:
    """Install the arbitrated steps on ``coord`` when the policy has an arbiter."""
    arbiter = ctx.arbiter
    if arbiter is None:
        return
    desk = _Desk(coord, ctx)
    coord.attempt_failed = _Failed(desk, coord.attempt_failed)
    if hasattr(coord, "_no_bid"):  # contract net: an auction without a usable bid
        coord._no_bid = _NoBids(desk, coord._no_bid)
    if not coord.requeue:  # a suspected agent's tasks wait there: ask about each
        coord.track = True  # which tasks went where: the views keep them
        coord.on_suspect = _Unreachable(desk, coord.on_suspect)
    risk = getattr(arbiter, "risk_slack", None)
    if risk is not None and coord.pull and any(t.deadline for t in ctx.scenario.workload.tasks):
        watch = _DeadlineWatch(desk, float(risk))
        coord.on_deadline_risk = watch.on_deadline_risk
        coord.on_arrival = watch.watching(coord.on_arrival)
        coord.reenter = watch.watching(coord.reenter)


def shortest(coord: Any, task: Task, exclude: int = -1) -> Any:
    """The view of the agent skilled for ``task`` and believed up with the shortest queue
    (lowest index among ties), other than agent index ``exclude``; ``None`` if none."""
    best = None
    for v in coord._skilled_for(task.skills):
        if v.up and v.index != exclude and (best is None or v.queue_length < best.queue_length):
            best = v
    return best


def send_elsewhere(coord: Any, task: Task, exclude: int = -1) -> Any:
    """``reassign`` for a ``queueing`` coordinator: send ``task`` now to :func:`shortest`
    (into its local queue if it is busy) and return that view; ``None`` when no agent is
    believed up for it (the caller then re-enters it, or waits)."""
    view = shortest(coord, task, exclude)
    if view is not None:
        coord._send(view, task)
    return view


class _Desk:
    """What the arbitrated steps share: the coordinator, estimates and the verbs they use."""

    __slots__ = ("coord", "ctx", "rates")

    def __init__(self, coord: Any, ctx: Any) -> None:
        self.coord = coord
        self.ctx = ctx
        self.rates: dict[tuple[str, ...], float] = {}

    def service(self, task: Task) -> float:
        """``task``'s service time on the fastest agent skilled for it (a static fact)."""
        rate = self.rates.get(task.skills)
        if rate is None:
            skilled = self.coord._skilled_for(task.skills)
            rate = self.rates[task.skills] = max(
                (v.speed * v.proficiency(task.skills) for v in skilled), default=0.0
            )
        return task.work / rate if rate > 0 else _INF

    def slack(self, task: Task) -> tuple[float, float]:
        """``(slack, service)``: the time ``task`` has to spare if served now, and how long
        it would take; a slack within a hair of 0 is 0."""
        service = self.service(task)
        slack = task.deadline - self.ctx.now - service
        return (0.0 if abs(slack) < _TINY else slack), service

    def send_elsewhere(self, task: Task, exclude: int = -1) -> Any:
        return send_elsewhere(self.coord, task, exclude)

    def escalate(self, task: Task, decision: Decision) -> None:
        task.priority -= decision.step


class _Failed:
    """``attempt_failed`` with the arbiter asked first (event ``failed``): the coordinator's
    own rule, or a ``retry`` component's, is the default that ``wait`` and ``escalate``
    keep; a bounce (a down agent handing a task back) is no failed attempt."""

    __slots__ = ("default", "desk")

    def __init__(self, desk: _Desk, default: Callable[..., None]) -> None:
        self.desk = desk
        self.default = default

    def __call__(self, task: Task, why: str, agent: Actor | None = None) -> None:
        if task.attempts == 0 or why == "bounced" or task.cancelled:
            self.default(task, why, agent)  # no attempt failed (or the task ended)
            return
        desk = self.desk
        ctx = desk.ctx
        slack, service = desk.slack(task)
        most = ctx.max_attempts
        where = agent.index if agent is not None else task.agent  # the agent it failed on
        decision = ctx.arbitrate(
            "failed",
            task,
            count=task.attempts,
            max_attempts=most,
            out_of_attempts=bool(task.fresh and task.attempts >= most),
            agent=agent.name if agent is not None else desk.coord.views[where].name,
            why=why,
            slack=slack,
            service=service,
        )
        action = decision.action
        if action in ("abort", "reassign"):
            if agent is not None and why in MAY_STILL_RUN:  # act on what the engine re-sends
                again = ctx.recover(task, agent)
                if again is None:
                    return  # it ended meanwhile: its report is on the way
                task = again
            if action == "abort":
                ctx.abandon(task)
            elif desk.send_elsewhere(task, where if decision.exclude else -1) is None:
                desk.coord.reenter(task)
            return
        if action == "escalate":
            desk.escalate(task, decision)
        self.default(task, why, agent)


class _NoBids:
    """Contract net's ``_no_bid`` with the arbiter asked first (event ``no_bids``)."""

    __slots__ = ("default", "desk", "rounds")

    def __init__(self, desk: _Desk, default: Callable[[Any], None]) -> None:
        self.desk = desk
        self.default = default
        self.rounds: dict[Task, int] = {}  # auctions without a bid, per task

    def __call__(self, auction: Any) -> None:
        desk = self.desk
        ctx = desk.ctx
        task = auction.task
        n = self.rounds[task] = self.rounds.get(task, 0) + 1
        slack, service = desk.slack(task)
        decision = ctx.arbitrate(
            "no_bids",
            task,
            count=n,
            invited=auction.invited,
            bids=len(auction.bids),
            slack=slack,
            service=service,
        )
        action = decision.action
        if action == "abort":
            del self.rounds[task]
            ctx.abandon(task)
            return
        if action == "reassign":
            view = desk.send_elsewhere(task)
            if view is not None:
                del self.rounds[task]
                desk.coord.awarded[view.index] += task.svc
                return
        elif action == "escalate":
            desk.escalate(task, decision)
        self.default(auction)


class _Unreachable:
    """``on_suspect`` with the arbiter asked about each task the suspected agent holds
    (event ``owner_unreachable``), under ``resume`` and ``restart``, where such tasks wait
    for the agent's return (under ``requeue`` they are re-sent, each a ``failed``
    attempt). Crashed or cut off by a partition, the coordinator cannot tell: it only
    stopped hearing from the agent. ``reassign``: a copy (the engine's ``recover``: the
    task itself if it was lost, a copy if it lives on; the first to finish wins) goes to
    the shortest queue elsewhere; ``abort``: logged, and as ``wait`` (a task out of reach
    cannot be ended from here); ``escalate``: its priority is raised (for when it is
    dispatched again); ``wait``: it stays where it is."""

    __slots__ = ("counts", "default", "desk")

    def __init__(self, desk: _Desk, default: Callable[[Any, Any], None]) -> None:
        self.desk = desk
        self.default = default
        self.counts: dict[int, int] = {}  # owner_unreachable raised, per task

    def __call__(self, sender: Any, news: tuple[Actor, int, bool]) -> None:
        self.default(sender, news)
        agent = news[0]
        desk = self.desk
        coord, ctx = desk.coord, desk.ctx
        view = coord.views[agent.index]
        for task in sorted(view.tasks, key=lambda t: (t.id, t.copy)):
            n = self.counts[task.id] = self.counts.get(task.id, 0) + 1
            slack, service = desk.slack(task)
            decision = ctx.arbitrate(
                "owner_unreachable",
                task,
                count=n,
                agent=agent.name,
                certain=news[2],
                slack=slack,
                service=service,
            )
            action = decision.action
            if action == "escalate":
                desk.escalate(task, decision)
            elif action == "abort":  # a task that may still run out of reach is not ended
                if ctx.tracing:
                    ctx.log(
                        "no_abort",
                        f"task {task.id} may still run on {agent.name}: it waits there",
                        task,
                    )
            elif action == "reassign":
                coord._forget(view, task)
                again = ctx.recover(task, agent)
                if again is not None and desk.send_elsewhere(again, agent.index) is None:
                    coord.reenter(again)


class _DeadlineWatch:
    """Timers on waiting tasks with a deadline: event ``deadline_risk``."""

    __slots__ = ("armed", "asks", "desk", "risk")

    def __init__(self, desk: _Desk, risk: float) -> None:
        self.desk = desk
        self.risk = risk
        self.armed: set[Task] = set()  # tasks with a check pending
        self.asks: dict[Task, int] = {}  # checks so far, per task still waiting

    def watching(self, step: Callable[[Any, Task], None] | Callable[[Task], None]) -> Any:
        """``step`` (``on_arrival(sender, task)`` or ``reenter(task)``), then a check armed
        for the task if it waits."""

        def watched(*args: Any) -> None:
            step(*args)
            task = args[-1]
            if task.deadline < _INF and task.state == WAITING and task not in self.armed:
                slack, _ = self.desk.slack(task)
                self._arm(task, max(slack - self.risk, 0.0))

        return watched

    def _arm(self, task: Task, delay: float) -> None:
        self.armed.add(task)
        self.desk.ctx.after(delay, "deadline_risk", task)

    def on_deadline_risk(self, sender: None, task: Task) -> None:
        """A check: ask the arbiter about ``task`` if it still waits in the queue."""
        self.armed.discard(task)
        if task.state != WAITING or task.end >= 0 or task.cancelled:
            self.asks.pop(task, None)
            return
        desk = self.desk
        ctx, coord = desk.ctx, desk.coord
        n = self.asks[task] = self.asks.get(task, 0) + 1
        slack, service = desk.slack(task)
        decision = ctx.arbitrate(
            "deadline_risk",
            task,
            count=n,
            slack=slack,
            service=service,
            waited=ctx.now - task.arrival,
            queued=len(coord.queue),
        )
        action = decision.action
        if action == "wait":
            if decision.recheck is not None:
                self._arm(task, decision.recheck)
            elif slack > 0:
                self._arm(task, slack)  # again when it can no longer wait
            return
        try:
            coord.queue.remove(task)
        except (ValueError, KeyError):
            return  # waiting elsewhere than this queue: nothing here to act on
        if action == "abort":
            self.asks.pop(task, None)
            ctx.abandon(task)
            return
        if action == "reassign":
            if desk.send_elsewhere(task) is not None:
                self.asks.pop(task, None)
                return
        else:
            desk.escalate(task, decision)
        coord.queue.push(task)
        if slack > 0:
            self._arm(task, slack)
        coord.pump()


def hook_worker_arbiter(worker: Any, ctx: Any) -> None:
    """Install the arbitrated ``lost_attempt`` on a ``worker`` agent under ``restart``, when
    the policy has an arbiter."""
    if ctx.arbiter is not None and worker.restarts:
        worker.lost_attempt = _WorkerFailed(worker, worker.lost_attempt)


class _WorkerFailed:
    """A worker's ``lost_attempt`` with the arbiter asked first (event ``failed``)."""

    __slots__ = ("default", "worker")

    def __init__(self, worker: Any, default: Callable[..., bool]) -> None:
        self.worker = worker
        self.default = default

    def __call__(self, task: Task, later: list[tuple[str, Task]]) -> bool:
        worker = self.worker
        if task in getattr(worker, "chain", ()):  # delegated here: its chain settles it
            return bool(self.default(task, later))
        ctx = worker.ctx
        most = ctx.max_attempts
        service = ctx.profile.service_time(task)  # the work starts over, here
        slack = task.deadline - ctx.now - service
        decision = ctx.arbitrate(
            "failed",
            task,
            count=task.attempts,
            max_attempts=most,
            out_of_attempts=task.attempts >= most,
            agent=ctx.name,
            slack=0.0 if abs(slack) < _TINY else slack,
            service=service,
        )
        action = decision.action
        if action == "abort":
            ctx.abandon(task)
            later.append(("done", task))
            return False
        if action == "reassign":
            ctx.restart(task)
            later.append(("returned", task))
            return False
        if action == "escalate":
            task.priority -= decision.step
        return bool(self.default(task, later))

"""Agent behaviours: what an agent does with the tasks that reach it.

An agent behaviour runs on one agent's actor. The engine calls it for the
agent's messages (``on_task``: a task sent to it) and for the physics of its
own slots: ``on_complete(task)`` when a task finishes service,
``on_crash()`` when the agent goes down and ``on_repair(suspended)`` when it
comes back. It acts on its slots only through its context.
"""

from __future__ import annotations

import heapq
from typing import Any

from kossim.policy import Behaviour
from kossim.sim.task import ORPHANED, QUEUED, Task, TaskQueue, make_queue
from policies.arbitrated import hook_worker_arbiter
from policies.backpressure import bounded_worker, held, refuse
from policies.speculation import ProgressReports

__all__ = ["Worker"]


class Worker(ProgressReports, Behaviour):
    """Serve what arrives: start it on a free slot, else queue it in the policy's order.

    With a preemptive queue discipline an arrival displaces the running task
    with the largest key when its own key is smaller; the victim goes back to
    the coordinator under pull dispatch, else to this agent's queue. Failures
    follow the scenario's ``on_failure``: ``resume`` keeps the work done,
    ``restart`` starts the attempt over (abandoning a task out of attempts),
    ``requeue`` loses the running and queued tasks with the agent (the
    coordinator reclaims them when it learns of the failure), and tasks sent
    to a down agent come back undelivered.

    An agent with a ``queue_limit`` (backpressure) refuses a task that reaches it
    while it holds that many: the task is rejected and the coordinator told.

    Called on for bids (contract net, ``on_announce``), it answers with its
    estimate of when it would finish the task, from its true local state; a
    down agent is silent.
    """

    kind = "agent"
    id = "worker"
    description = "start on a free slot, else queue locally; report every ending"
    sends: tuple[str, ...] = ("done", "bounce", "returned", "repaired")

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        self.discipline = ctx.component("queue")
        self.preemptive = bool(self.discipline.preemptive)
        self.pull = bool(ctx.component("dispatch").pull)
        self.local: TaskQueue = make_queue(self.discipline)
        self.coordinator = ctx.coordinator
        self.send = ctx.send
        self.filling = False
        self.requeue = ctx.failure_mode == "requeue"
        self.restarts = ctx.failure_mode == "restart"
        self.interval = ctx.heartbeat_interval
        self.manager: Any = None  # who asked for load reports (a delegation tree's manager)
        self.report_interval = 0.0
        if self.interval:  # heartbeats start at a random phase, so agents do not beat in step
            self.sends = (*self.sends, "heartbeat")
            self.detector = ctx.detector
            ctx.after(float(ctx.rng.uniform(0.0, self.interval)), "beat")
        bounded_worker(self)
        hook_worker_arbiter(self, ctx)

    def held(self) -> list[Task]:
        """Tasks this agent holds that are not on a slot (for conservation checks)."""
        return list(self.local)

    # -- messages -------------------------------------------------------------------------
    def on_task(self, sender: Any, task: Task) -> None:
        """A task sent by the coordinator arrives here."""
        ctx = self.ctx
        if not ctx.up:
            if self.requeue:  # unreachable: the sender learns it at once
                task.state = ORPHANED
                ctx.send(self.coordinator, "bounce", (task, ctx.incarnation), carries=task)
            else:
                task.state = QUEUED
                self.local.push(task)
            return
        # A preemption frees a slot, but the victim's return may be delivered at once and
        # fill it (a view that undercounts this agent: an attempt written off or timed out
        # that still runs here): then the task waits here instead.
        if len(ctx.running) < ctx.capacity or (
            self.preemptive and self._preempt_for(task) and len(ctx.running) < ctx.capacity
        ):
            ctx.start(task)
        else:
            task.state = QUEUED
            self.local.push(task)

    def _on_task_bounded(self, sender: Any, task: Task) -> None:
        """``on_task`` at an agent with a ``queue_limit``: a full agent refuses the task."""
        n = held(self)
        if n >= self.ctx.queue_limit:
            refuse(self, task, f"holds {n} of limit {self.ctx.queue_limit}")
            self.send(self.coordinator, "done", task)
            return
        Worker.on_task(self, sender, task)

    def _preempt_for(self, task: Task) -> bool:
        ctx = self.ctx
        ctx.refresh()
        key = self.discipline.key
        victim = max(ctx.running, key=lambda t: (key(t), t.id))
        if not key(task) < key(victim):
            return False
        ctx.preempt(victim)
        if ctx.tracing:
            ctx.log(
                "preempt",
                f"task {task.id} (key {key(task)}) displaces task {victim.id} (key {key(victim)})",
                victim,
            )
        self._displaced(victim)
        return True

    def _displaced(self, victim: Task) -> None:
        """Where a preempted task goes: back to a pull coordinator, else this queue."""
        if self.pull:
            self.ctx.send(self.coordinator, "returned", victim)
        else:
            victim.state = QUEUED
            self.local.push(victim)

    def on_beat(self, sender: None, payload: None) -> None:
        """Every ``interval``: a heartbeat to the detector, carrying the incarnation (none
        while the agent is down)."""
        ctx = self.ctx
        if ctx.up:
            ctx.send(self.detector, "heartbeat", ctx.incarnation)
        ctx.after(self.interval, "beat")

    # -- load reports (delegation trees) -----------------------------------------------------
    def on_subscribe(self, sender: Any, interval: float) -> None:
        """A manager asks for this agent's load every ``interval`` from now on (the last to
        ask is the one served): the first request starts the reports at a random phase."""
        first = self.manager is None
        self.manager = sender
        self.report_interval = interval
        if first:
            self.ctx.after(float(self.ctx.rng.uniform(0.0, interval)), "report")

    def on_report(self, sender: None, payload: None) -> None:
        """Every ``report_interval``: ``(tasks held, service rate, age of the facts: 0)`` to
        the manager, while up."""
        ctx = self.ctx
        if ctx.up:
            profile = ctx.profile
            load = len(ctx.running) + len(self.local)
            ctx.send(self.manager, "load", (load, profile.capacity * profile.speed, 0.0))
        ctx.after(self.report_interval, "report")

    # -- physics of the agent's own slots ---------------------------------------------------
    def on_complete(self, task: Task) -> None:
        if self.local:
            self._fill()
        self.send(self.coordinator, "done", task)

    def on_discard(self, task: Task) -> None:
        """A copy of a task that finished elsewhere first left this agent, from a slot or on
        its way to one: the coordinator hears of it as of a completion, and a slot it freed
        is filled (unless this agent is filling its slots already: a queue of discarded
        copies is skipped in one loop, not one nested call each)."""
        self.send(self.coordinator, "done", task)
        if self.local and not self.filling:
            self._fill()

    def _fill(self) -> None:
        local = self.local
        ctx = self.ctx
        running, capacity = ctx.running, ctx.capacity
        self.filling = True
        while local and len(running) < capacity:
            ctx.start(local.pop())
        self.filling = False

    def on_crash(self) -> None:
        if self.requeue:
            ctx = self.ctx
            running = ctx.running
            for t in running:  # the attempt's work is lost with the agent
                ctx.restart(t)
            ctx.orphan(running + self.local.drain())

    def on_repair(self, suspended: list[Task]) -> None:
        """Back up: the suspended tasks take their slots again before anything is reported,
        since a report delivered at once may bring a task for a slot that looks free."""
        ctx = self.ctx
        later: list[tuple[str, Task]] = []  # reports sent once the slots are taken
        cancelled: list[Task] = []  # copies whose sibling finished meanwhile: discarded
        for t in suspended:
            if self.restarts and not self.lost_attempt(t, later):
                continue
            if t.cancelled:
                cancelled.append(t)
                continue
            ctx.start(t)
        for t in cancelled:
            ctx.start(t)  # the engine discards it (on_discard reports it)
        for kind, t in later:
            ctx.send(self.coordinator, kind, t)
        self._fill()
        ctx.send(self.coordinator, "repaired", ctx.incarnation)

    def lost_attempt(self, task: Task, later: list[tuple[str, Task]]) -> bool:
        """``restart``: ``task``'s attempt was lost in the crash. Start it over (True), or
        abandon it once out of attempts, as under requeue (an arbiter may decide otherwise:
        hook_worker_arbiter); the report it owes the coordinator goes into ``later``, sent
        once the suspended tasks have their slots again."""
        ctx = self.ctx
        if task.attempts >= ctx.max_attempts:
            ctx.abandon(task)
            later.append(("done", task))
            return False
        ctx.restart(task)
        return True

    # -- contract net: bids ------------------------------------------------------------------
    def on_announce(self, sender: Any, call: tuple[int, Task]) -> None:
        """A call for bids ``(auction, task)``: bid the time this agent would finish the task.

        A down agent is silent; an agent without the skills bids ``inf`` (a refusal).
        """
        ctx = self.ctx
        if not ctx.up:
            return
        auction, task = call
        wait, service = self.estimate(task)
        bid = wait + service
        if ctx.tracing:
            ctx.log(
                "bid",
                f"task {task.id}: {bid:.4g} = wait {wait:.4g} ({len(ctx.running)} running of "
                f"{ctx.capacity}, {len(self.local)} queued) + service {service:.4g}",
                task,
                value=bid,
                to=sender.name,
            )
        ctx.send(sender, "bid", (auction, bid))

    def estimate(self, task: Task) -> tuple[float, float]:
        """``(wait, service)``: when a slot would free for ``task`` if it arrived now, and its
        service time here, from this agent's true state.

        The work left on the slots and the local tasks that would be served before
        ``task`` (all of them under FIFO, else those whose key is not larger) are
        placed on the earliest free slot in turn. An estimate: it foresees neither
        preemption nor later arrivals nor failures.
        """
        ctx = self.ctx
        profile = ctx.profile
        speed = profile.speed

        def service(t: Task) -> float:
            return t.remaining / (speed * profile.proficiency(t.skills) if t.skills else speed)

        if task.skills and profile.proficiency(task.skills) <= 0:
            return float("inf"), float("inf")
        ctx.refresh()
        running = ctx.running
        free = [service(t) for t in running]
        free.extend([0.0] * (ctx.capacity - len(running)))
        heapq.heapify(free)
        local = self.local
        if local:
            discipline = self.discipline
            if discipline.fifo:
                ahead = list(local)
            else:
                key = discipline.key
                mine = key(task)
                ahead = sorted((t for t in local if not mine < key(t)), key=key)
            for t in ahead:
                heapq.heapreplace(free, free[0] + service(t))
        return free[0], service(task)

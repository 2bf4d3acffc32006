"""Agents: the truth of what runs where, and the coordinator's view of it.

An :class:`Agent` serves up to ``capacity`` tasks at once, each at rate
``speed x proficiency``; its own queue orders what waits. Failures interrupt
running work: the completion event of an interrupted task is *superseded*
(``task.ev`` no longer points at it) rather than cancelled, since SimPy cannot
unschedule an event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simpy.events import Timeout

from kossim.sim.task import (
    ORPHANED,
    QUEUED,
    RUNNING,
    SUSPENDED,
    Task,
    TaskQueue,
    make_queue,
)

if TYPE_CHECKING:
    from kossim.sim.world import World

__all__ = ["Agent", "AgentState"]


class AgentState:
    """The coordinator's view of one agent (what policies read as ``AgentView``)."""

    __slots__ = (
        "_prof",
        "capacity",
        "group",
        "index",
        "listed",
        "name",
        "queue_length",
        "skills",
        "speed",
        "tasks",
        "trust",
        "up",
        "work_outstanding",
    )

    def __init__(
        self,
        index: int,
        name: str,
        group: str,
        speed: float,
        capacity: int,
        skills: dict[str, float],
        trust: float,
    ) -> None:
        self.index = index
        self.name = name
        self.group = group
        self.speed = speed
        self.capacity = capacity
        self.skills = skills
        self.trust = trust
        self.up = True
        self.queue_length = 0
        self.work_outstanding = 0.0
        self.tasks: set[Task] = set()
        self.listed = False  # in the coordinator's free list
        self._prof: dict[tuple[str, ...], float] = {}

    def proficiency(self, skills: tuple[str, ...]) -> float:
        """Rate multiplier for a task needing ``skills`` (weakest skill); 0 if one is missing."""
        p = self._prof.get(skills)
        if p is None:
            p = min((self.skills.get(s, 0.0) for s in skills), default=1.0)
            self._prof[skills] = p
        return p

    def service_time(self, task: Task) -> float:
        if not task.skills:
            return task.work / self.speed
        return task.work / (self.speed * self.proficiency(task.skills))

    def __repr__(self) -> str:
        return f"AgentView({self.name}, up={self.up}, queue_length={self.queue_length})"


class Agent:
    """One agent: slots, a local queue, an up/down state and busy-time accounting."""

    __slots__ = (
        "area",
        "area0",
        "capacity",
        "down",
        "epoch",
        "index",
        "last",
        "local",
        "name",
        "node",
        "orphans",
        "running",
        "up",
        "view",
        "world",
    )

    def __init__(self, world: World, view: AgentState, node: str) -> None:
        self.world = world
        self.view = view
        self.index = view.index
        self.name = view.name
        self.node = node
        self.capacity = view.capacity
        self.running: list[Task] = []
        self.local: TaskQueue = make_queue(world.discipline)
        self.orphans: list[Task] = []
        self.up = True
        self.down = 0  # overlapping causes (own clock, node) keep it down
        self.epoch = 0
        self.area = 0.0  # integral of busy slots over time
        self.area0 = 0.0
        self.last = 0.0

    # -- accounting -------------------------------------------------------
    def account(self, now: float) -> None:
        if self.up:
            self.area += len(self.running) * (now - self.last)
        self.last = now

    # -- work ---------------------------------------------------------------
    def receive(self, task: Task) -> None:
        """A task sent by the coordinator arrives here."""
        w = self.world
        if not self.up:
            if w.failure_mode == "requeue":  # unreachable: the sender learns it at once
                task.state = ORPHANED
                w.coordinator.bounce(self, task)
            else:
                task.state = QUEUED
                self.local.push(task)
            return
        if len(self.running) < self.capacity or (
            w.discipline.preemptive and self._preempt_for(task)
        ):
            self.start(task)
        else:
            task.state = QUEUED
            self.local.push(task)

    def start(self, task: Task) -> None:
        w = self.world
        now = w.env._now
        if self.up:  # inlined account(): this runs once per task
            self.area += len(self.running) * (now - self.last)
        self.last = now
        self.running.append(task)
        if task.fresh:
            task.fresh = False
            task.attempts += 1
        if task.start < 0:
            task.start = now
        task.state = RUNNING
        task.agent = self.index
        task.seg = now
        view = self.view
        rate = task.rate = view.speed * view.proficiency(task.skills) if task.skills else view.speed
        ev = task.ev = Timeout(w.env, task.remaining / rate, task)
        ev.callbacks.append(self._done)

    def _done(self, ev: Timeout) -> None:
        task: Task = ev._value
        if task.ev is not ev:
            return  # superseded by a preemption or a failure
        w = self.world
        now = w.env._now
        self.area += len(self.running) * (now - self.last)  # up: it just finished work
        self.last = now
        self.running.remove(task)
        task.ev = None
        task.remaining = 0.0
        w.finish(task)
        if self.local:
            self._fill()
        net = w.net
        if net.instant:  # inlined Net.send: once per task
            if now >= net.measure_from:
                net.messages += 1
            w.coordinator.completed(task)
        else:
            net.send(self.node, w.coord_node, w.coordinator.completed, task)

    def _fill(self) -> None:
        local = self.local
        while local and len(self.running) < self.capacity:
            self.start(local.pop())

    def _refresh(self, now: float) -> None:
        """Bring ``remaining`` of running tasks up to date (for key-based decisions)."""
        for t in self.running:
            t.remaining = max(0.0, t.remaining - (now - t.seg) * t.rate)
            t.seg = now

    def _preempt_for(self, task: Task) -> bool:
        w = self.world
        now = w.env._now
        self._refresh(now)
        key = w.discipline.key
        victim = max(self.running, key=lambda t: (key(t), t.id))
        if not key(task) < key(victim):
            return False
        self.account(now)
        self.running.remove(victim)
        victim.ev = None
        if w.pull:
            victim.state = ORPHANED
            w.coordinator.returned(self, victim)
        else:
            victim.state = QUEUED
            self.local.push(victim)
        return True

    # -- failures -------------------------------------------------------------
    def fail(self) -> None:
        self.down += 1
        if self.down > 1:
            return
        w = self.world
        now = w.env._now
        self.account(now)
        self.up = False
        self.epoch += 1
        self._refresh(now)
        for t in self.running:
            t.ev = None
            t.state = SUSPENDED
        if w.failure_mode == "requeue":
            for t in self.running:  # the attempt's work is lost with the agent
                t.remaining = t.work
                t.fresh = True
            lost = self.running + self.local.drain()
            self.running = []
            for t in lost:
                t.state = ORPHANED
            self.orphans.extend(lost)
        w.coordinator.failure_noticed(self, self.epoch)

    def repair(self) -> None:
        self.down -= 1
        if self.down > 0:
            return
        w = self.world
        self.account(w.env._now)
        self.up = True
        suspended, self.running = self.running, []
        for t in suspended:
            if w.failure_mode == "restart":
                if t.attempts >= w.max_attempts:  # out of attempts: abandoned, as under requeue
                    w.abandon(t)
                    w.net.send(self.node, w.coord_node, w.coordinator.completed, t)
                    continue
                t.remaining = t.work
                t.fresh = True
            self.start(t)
        self._fill()
        w.net.send(self.node, w.coord_node, w.coordinator.repaired, self)

    def take_orphans(self) -> list[Task]:
        out, self.orphans = self.orphans, []
        return out

    def live_tasks(self) -> list[Any]:
        return [*self.running, *self.local, *self.orphans]

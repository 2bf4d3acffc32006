"""Agents: the truth of what runs where, and the coordinator's view of it.

An :class:`Agent` serves up to ``capacity`` tasks at once, each at rate
``speed x proficiency``. Failures interrupt
running work: the completion event of an interrupted task is *superseded*
(``task.ev`` no longer points at it) rather than cancelled, since SimPy cannot
unschedule an event.
"""

from __future__ import annotations

from heapq import heappush
from typing import TYPE_CHECKING, Any

from kossim.sim.kernel import NORMAL, Call
from kossim.sim.task import ORPHANED, RUNNING, SUSPENDED, Task

if TYPE_CHECKING:
    from kossim.sim.world import World

__all__ = ["ROLE_MARK", "Agent", "AgentState", "proficiency_of"]

ROLE_MARK = "role:"
"""A task needing role R needs the pseudo-skill ``role:R``: its holders have it at 1, a
substitute at the role's fallback penalty. It multiplies the proficiency, not caps it."""


def proficiency_of(have: dict[str, float], need: tuple[str, ...]) -> float:
    """The weakest skill of ``need`` (1 if none), times any role marks' factors."""
    p = min((have.get(s, 0.0) for s in need if not s.startswith(ROLE_MARK)), default=1.0)
    for s in need:
        if s.startswith(ROLE_MARK):
            p *= have.get(s, 0.0)
    return p


class AgentState:
    """The coordinator's view of one agent (what policies read as ``AgentView``)."""

    __slots__ = (
        "_prof",
        "capacity",
        "group",
        "index",
        "limit",
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
        limit: int | None = None,
    ) -> None:
        self.index = index
        self.name = name
        self.group = group
        self.speed = speed
        self.capacity = capacity
        self.skills = skills
        self.trust = trust
        self.limit = limit  # the most tasks the agent holds (running + queued); None: unbounded
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
            p = self._prof[skills] = proficiency_of(self.skills, skills)
        return p

    def service_time(self, task: Task) -> float:
        if not task.skills:
            return task.work / self.speed
        return task.work / (self.speed * self.proficiency(task.skills))

    def __repr__(self) -> str:
        return f"AgentView({self.name}, up={self.up}, queue_length={self.queue_length})"


class Agent:
    """One agent's physics: slots, service at rate ``speed x proficiency``, failures, busy time.

    What the agent *decides* (accept, queue, preempt, report) is its
    behaviour's (``policies.agent``); the behaviour acts on these slots only
    through its :class:`~kossim.sim.context.AgentContext`.
    """

    __slots__ = (
        "_done_cbs",
        "_eid",
        "_queue",
        "area",
        "area0",
        "behaviour",
        "capacity",
        "crash_times",
        "ctx",
        "down",
        "down0",
        "down_time",
        "epoch",
        "index",
        "last",
        "name",
        "node",
        "orphans",
        "profile",
        "running",
        "up",
        "world",
    )

    def __init__(self, world: World, profile: AgentState, node: str) -> None:
        self.world = world
        self.profile = profile
        self.index = profile.index
        self.name = profile.name
        self.node = node
        self.capacity = profile.capacity
        self.behaviour: Any = None
        self.ctx: Any = None  # its actor's context, which mirrors ``up``
        self.running: list[Task] = []
        # Lost with a crash until reclaimed: a dict as an ordered set, so that a recovery
        # takes one out in O(1) and a reclaim returns them in the order they were lost.
        self.orphans: dict[Task, None] = {}
        self.up = True
        self.down = 0  # overlapping causes (own clock, node) keep it down
        self.epoch = 0
        self.crash_times: list[float] = []  # when each failure began (truth, for the ledger)
        self.area = 0.0  # integral of busy slots over time
        self.area0 = 0.0
        self.down_time = 0.0  # time spent down
        self.down0 = 0.0
        self.last = 0.0
        # Completions are scheduled as kossim.sim.kernel.Call events, straight onto the
        # environment's heap (both fixed for the run): see start().
        self._done_cbs = (self._done,)
        self._queue: list[Any] = world.env._queue  # typed for Events: a Call walks like one
        self._eid = world.env._eid

    # -- accounting -------------------------------------------------------
    def account(self, now: float) -> None:
        if self.up:
            self.area += len(self.running) * (now - self.last)
        else:
            self.down_time += now - self.last
        self.last = now

    # -- work ---------------------------------------------------------------
    def start(self, task: Task) -> None:
        w = self.world
        if task.cancelled:  # a copy whose sibling finished first: it goes no further
            w.ledger.discard(self, task)
            return
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
        p = self.profile
        rate = task.rate = p.speed * p.proficiency(task.skills) if task.skills else p.speed
        ev = task.ev = Call()  # kernel.call_after() inlined: this runs once per task
        ev.callbacks = self._done_cbs
        ev._value = task
        heappush(self._queue, (now + task.remaining / rate, NORMAL, next(self._eid), ev))

    def _done(self, ev: Any) -> None:  # a Call, or a Timeout (kossim.sim.slowdown, pauses)
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
        self.behaviour.on_complete(task)

    def _refresh(self, now: float) -> None:
        """Bring ``remaining`` of running tasks up to date (for key-based decisions)."""
        for t in self.running:
            t.remaining = max(0.0, t.remaining - (now - t.seg) * t.rate)
            t.seg = now

    def preempt(self, task: Task) -> None:
        """Take running ``task`` off its slot (its ``remaining`` must be fresh)."""
        self.account(self.world.env._now)
        self.running.remove(task)
        task.ev = None

    # -- failures -------------------------------------------------------------
    def fail(self) -> None:
        self.down += 1
        if self.down > 1:
            return
        w = self.world
        now = w.env._now
        self.account(now)
        self.up = self.ctx.up = False
        self.epoch += 1
        self.crash_times.append(now)
        self._refresh(now)
        for t in self.running:
            t.ev = None
            t.state = SUSPENDED
        self.behaviour.on_crash()
        w.crashed(self)

    def repair(self) -> None:
        self.down -= 1
        if self.down > 0:
            return
        self.account(self.world.env._now)
        self.up = self.ctx.up = True
        suspended = self.running[:]
        self.running.clear()  # in place: the agent's context holds this very list
        self.behaviour.on_repair(suspended)

    def orphan(self, tasks: list[Task]) -> None:
        """``tasks`` are lost with this agent until the coordinator reclaims them."""
        for t in tasks:
            t.state = ORPHANED
        self.running[:] = [t for t in self.running if t.state != ORPHANED]
        self.orphans.update(dict.fromkeys(tasks))

    def take_orphans(self) -> list[Task]:
        out, self.orphans = self.orphans, {}
        return list(out)

    def live_tasks(self) -> list[Any]:
        return [*self.running, *self.behaviour.held(), *self.orphans]

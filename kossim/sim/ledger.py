"""The engine's ledger of what protocols cannot know: copies of tasks and the truth of suspicions.

A coordinator that believes an agent dead re-sends the tasks it had sent
there. It cannot know whether they were lost; the engine does. When a task
was lost with a crash, the re-sent task is the task itself; when it is
still alive (the suspicion was false, or a report is on its way), the
re-sent task is a *copy*, and the copies of one task form a family: the
first to finish ends the task (it alone is recorded), the others are
cancelled where they are and counted as duplicates.

A *shadow* is a copy that never races: it runs beside the task so that its
result can be compared with the task's (trust-gated routing tries unproven
agents this way). It neither ends its task nor is cancelled when the task
ends; it ends on its own, unrecorded, and its service time is ``shadow_work``.

The ledger also judges each suspicion a detector raises against the truth
(a crash that happened, or not), for ``false_suspicions`` and
``detection_latency_mean``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kossim.sim.task import ABANDONED, CANCELLED, DONE, ORPHANED, RUNNING, Task

if TYPE_CHECKING:
    from kossim.sim.agent import Agent
    from kossim.sim.world import World

__all__ = ["Ledger"]


class Ledger:
    """Families of task copies, and suspicions judged against crashes."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.families: dict[int, list[Task]] = {}  # task id -> its live copies (2 or more)
        self._copies: dict[int, int] = {}  # task id -> copies made so far
        self.duplicates = 0  # copies made of measured tasks
        self.duplicate_work = 0.0  # service time spent on copies that lost
        self.shadows: set[Task] = set()  # live shadow copies
        self.shadow_copies = 0  # shadows made of measured tasks
        self.shadow_work = 0.0  # service time spent on shadows of measured tasks
        self.suspicions = 0
        self.false_suspicions = 0
        self.detection_latencies: list[float] = []
        self._detected: set[tuple[int, int]] = set()  # (agent, crash number) suspected

    # -- copies -----------------------------------------------------------------------
    @property
    def has_copies(self) -> bool:
        return bool(self._copies)

    def recover(self, task: Task, agent: Agent) -> Task | None:
        """The task to re-send for ``task``, sent to ``agent`` and believed lost with it:
        the task itself if it was lost, else a copy.

        ``None`` when the task has ended already (its report is on the way).
        """
        if task.end >= 0 or task.cancelled:
            return None
        if task.state == ORPHANED and task in agent.orphans:
            agent.orphans.remove(task)
            return task
        return self.copy(task)

    def copy(self, task: Task) -> Task:
        """A new copy of live ``task``, starting over as a new attempt."""
        family = self.families.get(task.id)
        if family is None:
            family = self.families[task.id] = [task]
        n = self._copies[task.id] = self._copies.get(task.id, 0) + 1
        c = Task(
            task.id,
            task.type,
            task.tidx,
            task.work,
            task.priority,
            task.deadline,
            task.skills,
            task.arrival,
            task.measured,
        )
        c.copy = n
        c.attempts = task.attempts
        c.hops = task.hops
        c.start = task.start  # the task's first start, whichever copy it was
        family.append(c)
        if task.measured:
            self.duplicates += 1
        return c

    def shadow(self, task: Task) -> Task:
        """A shadow copy of live ``task``: it runs beside the task, never in its place."""
        c = self.copy(task)
        if task.measured:
            self.duplicates -= 1  # counted as a shadow, not as a duplicate
            self.shadow_copies += 1
        self.shadows.add(c)
        return c

    def ends_family(self, task: Task) -> bool:
        """``task``, a member of a family, ends: is it the task's ending?

        A completion ends the task and cancels the other copies (not its
        shadows, which run on). An abandoned copy ends the task only if it was
        the last one alive. A shadow never ends its task: it leaves the family
        ``DONE`` or ``ABANDONED`` but unrecorded (``end`` stays -1).
        """
        family = self.families[task.id]
        family.remove(task)
        shadows = self.shadows
        if shadows and task in shadows:
            self._shadow_ends(task)
            if not family:
                del self.families[task.id]
            return False
        live = [t for t in family if t not in shadows] if shadows else family
        if task.state != RUNNING and live:  # abandoned, and a sibling lives on
            task.state = CANCELLED
            task.cancelled = True
            return False
        if len(live) < len(family):  # the shadows run on, still in the family
            self.families[task.id] = [t for t in family if t in shadows]
        else:
            del self.families[task.id]
        for other in live:
            self.cancel(other)
        return True

    def _shadow_ends(self, task: Task) -> None:
        self.shadows.discard(task)
        task.state = DONE if task.state == RUNNING else ABANDONED
        done = task.work - task.remaining
        if task.measured and done > 0:
            self.shadow_work += done / task.rate

    def cancel(self, task: Task) -> None:
        """Stop a copy that lost: at once if it runs, else when it next reaches a slot."""
        running = task.state == RUNNING
        task.cancelled = True
        if running:
            task.state = CANCELLED
            agent = self.world.agents[task.agent]
            agent._refresh(self.world.env._now)
            agent.preempt(task)
            self.discard(agent, task)

    def discard(self, agent: Agent, task: Task) -> None:
        """A cancelled copy leaves ``agent``; its work so far is duplicate work."""
        done = task.work - task.remaining
        if task.measured and done > 0:
            self.duplicate_work += done / task.rate
        task.ev = None
        agent.behaviour.on_discard(task)

    def figures(self) -> dict[str, float]:
        """The ledger's metrics over the measurement window."""
        lat = self.detection_latencies
        return {
            "suspicions": float(self.suspicions),
            "false_suspicions": float(self.false_suspicions),
            "detection_latency_mean": sum(lat) / len(lat) if lat else float("nan"),
            "duplicates": float(self.duplicates),
            "duplicate_work": self.duplicate_work,
        }

    # -- suspicions ---------------------------------------------------------------------
    def judge(self, agent: Agent, crash: int, now: float) -> None:
        """A detector suspects ``agent`` of its ``crash``-th failure: true or false?"""
        measured = now >= self.world.kernel.measure_from
        if measured:
            self.suspicions += 1
        if agent.epoch < crash:  # that crash never happened: the agent is up
            if measured:
                self.false_suspicions += 1
            return
        key = (agent.index, crash)
        if key not in self._detected:
            self._detected.add(key)
            if measured:
                self.detection_latencies.append(now - agent.crash_times[crash - 1])

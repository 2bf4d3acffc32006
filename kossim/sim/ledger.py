"""The engine's ledger of what protocols cannot know: task families and the truth of suspicions.

A coordinator that believes an agent dead re-sends the tasks it had sent
there. It cannot know whether they were lost; the engine does. When a task
was lost with a crash, the re-sent task is the task itself; when it is
still alive (the suspicion was false, or a report is on its way), the
re-sent task is a *copy*, and the copies of one task form a family: the
first to finish ends the task (it alone is recorded), the others are
cancelled where they are and counted as duplicates.

A bundle is a family too: its ``k`` subtasks share the bundle's id, and the
family ends when its rule is met (``need`` parts finished: all of them, or a
quorum ``m``); the subtasks still live then are cancelled and their work so far
counted (``cancelled_work``). Only the bundle is recorded, once. Gang
reservations a coordinator declares are kept here too, for ``reservation_idle``.

A *shadow* is a copy that never races: it runs beside the task so that its
result can be compared with the task's (trust-gated routing tries unproven
agents this way). It neither ends its task nor is cancelled when the task
ends; it ends on its own, unrecorded, and its service time is ``shadow_work``.

The ledger also judges each suspicion a detector raises against the truth
(a crash that happened, or not), for ``false_suspicions`` and
``detection_latency_mean``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kossim.sim.task import ABANDONED, CANCELLED, DONE, DROPPED, ORPHANED, RUNNING, Task

if TYPE_CHECKING:
    from kossim.sim.agent import Agent
    from kossim.sim.world import World

__all__ = ["BundleCounts", "Family", "Ledger"]


class BundleCounts:
    """What bundles did in the measurement window (subtasks of measured bundles)."""

    __slots__ = ("cancelled", "cancelled_work", "held", "open", "subtasks", "subtasks_done")

    def __init__(self) -> None:
        self.subtasks = 0
        self.subtasks_done = 0
        self.cancelled = 0  # subtasks cancelled as a bundle's remainder
        self.cancelled_work = 0.0  # service time they had received
        self.open: list[tuple[int, float]] = []  # (agent, since): reservations held now
        self.held: list[tuple[float, float]] = []  # (since, until): reservations released

    def reserved_time(self, start: float, end: float) -> float:
        """Slot-time held idle by reservations inside ``[start, end]`` (open ones until ``end``)."""
        spans = [*self.held, *((since, end) for _, since in self.open)]
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)


class Family:
    """Tasks that share one id and end together by a rule.

    The copies of a task (``k`` 1, ``need`` 1): the first copy to finish ends
    it. The subtasks of a bundle (parts ``0 .. k-1``, each with copies of its
    own): it completes when ``need`` parts have finished (``k`` for gangs and
    independent bundles, ``m`` for a quorum), and is abandoned once too many
    parts are lost for that to happen.
    """

    __slots__ = ("done", "everyone", "k", "lost", "members", "mode", "need", "numbered")

    def __init__(self, k: int, need: int, mode: str = "") -> None:
        self.k = k
        self.need = need
        self.mode = mode  # "" for the copies of a plain task
        self.members: list[Task] = []  # alive
        self.everyone: list[Task] = []  # ever (for the bundle's first start)
        self.done: set[int] = set()  # parts finished
        self.lost: set[int] = set()  # parts abandoned with no copy alive
        self.numbered = k - 1  # lineage numbers handed out: parts first, then copies

    def add(self, task: Task) -> None:
        self.members.append(task)
        self.everyone.append(task)


def _part(task: Task) -> int:
    return task.part if hasattr(task, "part") else 0


class Ledger:
    """Families of tasks (copies, bundles), suspicions judged against crashes, reservations."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.families: dict[int, Family] = {}  # task id -> its family while it lives
        self._copies: dict[int, int] = {}  # task id -> copies made so far
        self.bundled = False  # the workload has bundles: live tasks are found by family
        self.duplicates = 0  # copies made of measured tasks
        self.duplicate_work = 0.0  # service time spent on copies that lost
        self.shadows: set[Task] = set()  # live shadow copies
        self.shadow_copies = 0  # shadows made of measured tasks
        self.shadow_work = 0.0  # service time spent on shadows of measured tasks
        self.suspicions = 0
        self.false_suspicions = 0
        self.detection_latencies: list[float] = []
        self._detected: set[tuple[int, int]] = set()  # (agent, crash number) suspected
        self.bundle_counts = BundleCounts()
        self._settled: set[Task] = set()  # cancelled subtasks whose work is counted already

    # -- copies -----------------------------------------------------------------------
    @property
    def has_copies(self) -> bool:
        return self.bundled or bool(self._copies)

    def recover(self, task: Task, agent: Agent) -> Task | None:
        """The task to re-send for ``task``, sent to ``agent`` and believed lost with it:
        the task itself if it was lost (with the agent, or with a message that the network
        dropped), else a copy.

        ``None`` when the task has ended already (its report is on the way).
        """
        if task.end >= 0 or task.cancelled:
            return None
        if task.state == ORPHANED and task in agent.orphans:
            del agent.orphans[task]
            return task
        if task.state == DROPPED:
            self.world.kernel.dropped.discard(task)
            return task
        return self.copy(task)

    def copy(self, task: Task) -> Task:
        """A new copy of live ``task``, starting over as a new attempt."""
        family = self.families.get(task.id)
        if family is None:
            family = self.families[task.id] = Family(1, 1)
            family.add(task)
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
        if family.mode:  # a bundle's subtask: its copy numbers follow the parts'
            family.numbered += 1
            c.copy = family.numbered
            c.part = task.part
        else:
            c.copy = n
        c.attempts = task.attempts
        c.hops = task.hops
        c.start = task.start  # the task's first start, whichever copy it was
        family.add(c)
        if task.measured:
            self.duplicates += 1
        return c

    def bundle(
        self, task: Task, k: int, need: int, mode: str, work: Callable[[], float]
    ) -> list[Task]:
        """Split arriving ``task`` into the ``k`` subtasks of a bundle (``task`` is part 0;
        the others draw their work from ``work``, the type's own stream)."""
        family = self.families[task.id] = Family(k, need, mode)
        task.part = 0
        family.add(task)
        for part in range(1, k):
            t = Task(
                task.id,
                task.type,
                task.tidx,
                work(),
                task.priority,
                task.deadline,
                task.skills,
                task.arrival,
                task.measured,
            )
            t.copy = t.part = part
            family.add(t)
        if task.measured:
            self.bundle_counts.subtasks += k
        return list(family.members)

    def shadow(self, task: Task) -> Task:
        """A shadow copy of live ``task``: it runs beside the task, never in its place."""
        c = self.copy(task)
        if task.measured:
            self.duplicates -= 1  # counted as a shadow, not as a duplicate
            self.shadow_copies += 1
        self.shadows.add(c)
        return c

    def ends_family(self, task: Task) -> bool:
        """``task``, a member of a family, ends: is it the task's (or bundle's) ending?

        A completion finishes its part and cancels the part's other copies; once
        ``need`` parts are finished the family ends and the rest is cancelled. An
        abandoned member ends the family only when too few parts are left to meet
        the rule (for copies: when it was the last one alive). A shadow never ends
        its task and is never cancelled by its end: it leaves the family ``DONE`` or
        ``ABANDONED`` with its ``end`` set but unrecorded, and shadows still running
        when the task ends keep the family open until they end.
        """
        family = self.families[task.id]
        family.members.remove(task)
        shadows = self.shadows
        if shadows and task in shadows:
            self._shadow_ends(task)
            if not family.members:
                del self.families[task.id]
            return False
        racing = [m for m in family.members if m not in shadows] if shadows else family.members
        part = _part(task)
        if task.state == RUNNING:  # it completed
            family.done.add(part)
            if len(family.done) < family.need:
                task.state = DONE
                task.end = self.world.env._now  # the part's end (the bundle's is recorded)
                if task.measured:
                    self.bundle_counts.subtasks_done += 1
                self._log(
                    "part_done",
                    f"bundle {task.id}: part {part} done "
                    f"({len(family.done)} of {family.need} needed)",
                    task,
                )
                for other in [m for m in racing if _part(m) == part]:
                    family.members.remove(other)
                    self.cancel(other)
                return False
            if task.measured and family.mode:
                self.bundle_counts.subtasks_done += 1
            why = "quorum reached" if family.mode == "quorum" else ""
        else:  # abandoned
            if any(_part(m) == part for m in racing):  # a copy of its part lives on
                task.state = CANCELLED
                task.cancelled = True
                return False
            if family.mode:
                family.lost.add(part)
                if family.k - len(family.lost) >= family.need:
                    self._log(
                        "part_lost",
                        f"bundle {task.id}: part {part} abandoned; {family.need} of "
                        f"{family.k - len(family.lost)} parts left can still complete it",
                        task,
                    )
                    task.state = CANCELLED
                    task.cancelled = True
                    return False
            why = "bundle abandoned" if family.mode else ""
        if len(racing) < len(family.members):  # shadows run on, still in the family
            family.members = [m for m in family.members if m in shadows]
        else:
            del self.families[task.id]
        if family.mode:
            starts = [t.start for t in family.everyone if t.start >= 0]
            task.start = min(starts) if starts else -1.0
            if why == "quorum reached":
                self._log(
                    "quorum",
                    f"bundle {task.id}: {family.need} of {family.k} parts done, "
                    f"{len(racing)} cancelled",
                    task,
                )
        for other in racing:
            self.cancel(other, why)
        return True

    def _shadow_ends(self, task: Task) -> None:
        self.shadows.discard(task)
        task.state = DONE if task.state == RUNNING else ABANDONED
        # Ended (never live again, never in transit with its report), though not recorded.
        task.end = self.world.env._now
        done = task.work - task.remaining
        if task.measured and done > 0:
            self.shadow_work += done / task.rate

    def cancel(self, task: Task, why: str = "") -> None:
        """Stop a member that is no longer needed: at once if it runs, else when it next
        reaches a slot. ``why`` (a bundle's remainder): its work so far is cancelled work,
        else (a copy that lost) duplicate work."""
        running = task.state == RUNNING
        task.cancelled = True
        agent = self.world.agents[task.agent] if running else None
        if agent is not None:
            agent._refresh(self.world.env._now)
        if why:
            done = task.work - task.remaining
            if task.measured:
                counts = self.bundle_counts
                counts.cancelled += 1
                if done > 0:
                    counts.cancelled_work += done / task.rate
            self._settled.add(task)
            where = f"running on {agent.name}" if agent is not None else "not running"
            self._log(
                "cancel",
                f"bundle {task.id}: part {_part(task)} cancelled ({why}), "
                f"{where}, {done:.4g} of {task.work:.4g} work done",
                task,
            )
        if agent is not None:
            task.state = CANCELLED
            agent.preempt(task)
            self.discard(agent, task)

    def discard(self, agent: Agent, task: Task) -> None:
        """A cancelled member leaves ``agent``; a lost copy's work so far is duplicate work."""
        if task in self._settled:
            self._settled.discard(task)
        else:
            done = task.work - task.remaining
            if task.measured and done > 0:
                self.duplicate_work += done / task.rate
        task.ev = None
        agent.behaviour.on_discard(task)

    # -- gang reservations ------------------------------------------------------------
    def reserve(self, agent: int, now: float) -> None:
        """A coordinator holds a slot of ``agent`` idle for a gang from ``now``."""
        self.bundle_counts.open.append((agent, now))

    def release(self, agent: int, now: float) -> None:
        """The earliest open reservation of ``agent`` ends at ``now``."""
        counts = self.bundle_counts
        for i, (a, since) in enumerate(counts.open):
            if a == agent:
                del counts.open[i]
                counts.held.append((since, now))
                return
        raise RuntimeError(f"agent {agent} released without a reservation")

    def _log(self, kind: str, reason: str, task: Task) -> None:
        log = self.world.kernel.log
        if log is not None:
            log.record(self.world.env._now, kind, "ledger", reason, task, {})

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

    def bundle_figures(self, start: float, end: float) -> dict[str, float]:
        """The bundles' metrics over the window ``[start, end]`` (none without bundles)."""
        if not self.bundled:
            return {}
        c = self.bundle_counts
        return {
            "subtasks": float(c.subtasks),
            "subtasks_completed": float(c.subtasks_done),
            "cancelled_subtasks": float(c.cancelled),
            "cancelled_work": c.cancelled_work,
            "reservation_idle": c.reserved_time(start, end),
        }

    # -- suspicions ---------------------------------------------------------------------
    def judge(self, agent: Agent, crash: int, now: float, by: str = "") -> None:
        """Detector ``by`` suspects ``agent`` of its ``crash``-th failure: true or false?"""
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

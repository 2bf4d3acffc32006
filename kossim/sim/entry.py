"""The front door under coordinator failover, and acknowledged submission.

Physics, as :mod:`kossim.sim.failover` (whose ``Failover`` builds both):

* **The entry** (an actor on the coordinator's node) takes every arrival and
  passes it to the leader it knows. A task that comes back from a coordinator
  (the waiting tasks of a crashed one, a task carried by a message a
  coordinator refuses) or finds no coordinator answering is held here until a
  leader announces itself (``leader``), then passed on in arrival order. The
  time a task spends held is its delay by failover.
* **Acknowledged submission.** The leader acks each arrival it gets (``ack``);
  the entry keeps an arrival until then and re-sends it (``resend``) to the
  leader it knows ``ack_timeout`` after sending it. A resend carries no task of
  its own: it takes the task back from the network only if the submission was
  lost (the task is ``DROPPED``).
* **The ring's log of accepted submissions** (:class:`Accepted`), durable like
  the term: a resend of a task some leader accepted (its ack was lost) is a
  duplicate, acked again and not enqueued; a task a coordinator gives back to
  the entry leaves the log.
* **Measurements** (in ``Failover.rows``): ``entry_resends`` and
  ``entry_duplicates``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from kossim.sim.kernel import Actor
from kossim.sim.task import DROPPED, WAITING, Task

if TYPE_CHECKING:
    from kossim.sim.failover import Failover
    from kossim.sim.world import World

__all__ = ["Accepted", "Entry"]


class Entry:
    """The front door: arrivals go to the leader it knows; held while none answers.

    A submission is acknowledged: the entry keeps each arrival it sent until the leader
    it went to acks it (``ack``), and re-sends the unacknowledged ones (``resend``) to
    the leader it knows ``ack_timeout`` after it sent them (postponed while no
    coordinator answers). An ack from another coordinator than the one the task was
    last sent to is stale and ignored.
    """

    sends: tuple[str, ...] = ("arrival", "resend")

    def __init__(self, failover: Failover, leader: Actor, ack_timeout: float) -> None:
        self.failover = failover
        self.leader = leader
        self.news = (1, 0)  # the leader's (term, rank)
        self.open = True  # the leader answers, as far as the entry knows
        self.waiting: list[Task] = []
        self.since: dict[Task, float] = {}
        self.delay: dict[Task, float] = {}  # measured tasks held here: total time held
        self.ack_timeout = ack_timeout
        # sent, not acknowledged: task -> (resend deadline, the coordinator it went to,
        # resends so far), in deadline order (every deadline is a send time + ack_timeout)
        self.unacked: OrderedDict[Task, tuple[float, Actor, int]] = OrderedDict()
        self.armed = False  # a resend timer is set (for the oldest deadline)
        self.resends: list[float] = []  # when each resend was sent

    def on_start(self, ctx: Any) -> None:
        self.ctx = ctx

    def held(self) -> list[Task]:
        return list(self.waiting)

    def arrive(self, sender: Any, task: Task) -> None:
        """A new task (the world's arrivals enter here)."""
        if self.open:
            self._submit(task, self.leader)
        else:
            self.hold(task, None, "no coordinator answers")

    def _submit(self, task: Task, to: Actor, resends: int = 0) -> None:
        """Send ``task`` to coordinator ``to`` and keep it until ``to`` acks it."""
        unacked = self.unacked
        unacked[task] = (self.ctx.now + self.ack_timeout, to, resends)
        if resends:
            self.resends.append(self.ctx.now)
            self.ctx.send(to, "resend", (task, resends))
        else:
            self.ctx.send(to, "arrival", task)
        if not self.armed and unacked:  # (an ack on the same node came back at once)
            self._arm()

    def _arm(self) -> None:
        deadline = next(iter(self.unacked.values()))[0]
        self.armed = True
        self.ctx.after(max(0.0, deadline - self.ctx.now), "ack_timeout", deadline)

    def on_ack(self, sender: Actor, news: tuple[Task, int]) -> None:
        """Coordinator ``sender`` acknowledges ``task`` (in its ``term``)."""
        task = news[0]
        got = self.unacked.get(task)
        if got is not None and got[1] is sender:
            del self.unacked[task]

    def on_ack_timeout(self, sender: None, deadline: float) -> None:
        """Re-send every submission unacknowledged by ``deadline``, to the leader known."""
        self.armed = False
        unacked = self.unacked
        ctx = self.ctx
        due: list[tuple[Task, Actor, int]] = []
        while unacked:
            task, (when, to, n) = next(iter(unacked.items()))
            if when > deadline:
                break
            del unacked[task]
            if task.end < 0 and not task.cancelled:
                due.append((task, to, n))
        for task, to, n in due:
            if not self.open:  # no coordinator answers: try again when one leads
                unacked[task] = (ctx.now + self.ack_timeout, to, n)
                continue
            if ctx.tracing:
                ctx.log(
                    "resend",
                    f"task {task.id} not acknowledged by {to.name} within "
                    f"{self.ack_timeout:g}: re-sent to {self.leader.name} (resend {n + 1})",
                    task,
                )
            self._submit(task, self.leader, n + 1)
        if unacked and not self.armed:
            self._arm()

    def hold(self, task: Task, at: Actor | None, why: str) -> None:
        """``task`` came back from coordinator ``at`` (or found the door shut)."""
        self.unacked.pop(task, None)  # here now: released, it is sent afresh
        if task.end >= 0:
            return  # ended already (reneged while it waited)
        if at is self.leader:
            self.open = False
        elif at is not None and self.open:  # from a coordinator that no longer leads
            self._submit(task, self.leader)
            return
        self.waiting.append(task)
        self.since[task] = self.ctx.now
        ctx = self.ctx
        if ctx.tracing:
            ctx.log("hold", f"task {task.id} held at the entry: {why}", task)

    def on_leader(self, sender: Actor, news: tuple[int, int]) -> None:
        """A coordinator announces it leads: the held tasks go to it, in arrival order."""
        if news[0] < self.news[0] or (news[0] == self.news[0] and news[1] > self.news[1]):
            return  # an announcement older than the leader known
        self.leader, self.news, self.open = sender, news, True
        waiting, self.waiting = sorted(self.waiting, key=_lineage), []
        ctx = self.ctx
        now = ctx.now
        for task in waiting:
            held = now - self.since.pop(task)
            if task.measured:
                self.delay[task] = self.delay.get(task, 0.0) + held
            if task.end >= 0:
                continue
            if ctx.tracing:
                ctx.log("release", f"task {task.id} to {sender.name} after {held:.6g}", task)
            self._submit(task, sender)

    def metric_rows(self, start: float, end: float) -> list[tuple[str, str, float]]:
        return self.failover.rows(start, end)


class Accepted:
    """The ring's log of accepted submissions. Ended tasks are pruned from it (a resend of
    one is recognised as ended), so it holds about the live tasks."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.tasks: set[Task] = set()
        self._prune_at = 4096
        self.duplicates: list[float] = []  # when a leader recognised a duplicate

    def give_back(self, task: Task) -> None:
        """A coordinator gives ``task`` back to the entry: the ring has it no more."""
        self.tasks.discard(task)

    def admit(self, task: Task, resent: bool) -> str:
        """A leader received submission ``task`` (an ``arrival`` or a ``resend``): is it
        ``new`` (to enqueue: accepted into the ring's log), a ``duplicate`` (accepted
        before: its ack was lost), ``ended``, or, for a resend, ``pending`` (the first
        submission is still on the wire, or the task is back at the entry)?

        Physics: a resend carries no task; it takes the task back from the network only
        if the submission was lost (``DROPPED``)."""
        if task.end >= 0 or task.cancelled:
            return "ended"
        accepted = self.tasks
        if task in accepted:
            self.duplicates.append(self.world.env._now)
            return "duplicate"
        if resent:
            if task.state != DROPPED:
                return "pending"
            self.world.kernel.dropped.discard(task)
            task.state = WAITING
        accepted.add(task)
        if len(accepted) > self._prune_at:
            self.tasks = {t for t in accepted if t.end < 0 and not t.cancelled}
            self._prune_at = max(4096, 2 * len(self.tasks))
        return "new"


def _lineage(t: Task) -> tuple[int, int]:
    return (t.id, t.copy)

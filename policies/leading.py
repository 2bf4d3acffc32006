"""The failover protocol's side in a leading coordinator and in an agent (mixins).

:class:`Leading` is mixed in front of a leading coordinator's own class: it knows
its term and rank, beats to the other coordinators (``leader_beat``), announces
itself (``leader``), rebuilds its views from the agents' ``state`` reports, steps
down when it hears a leader ahead of it, and acknowledges the entry's
submissions (``ack``; a resend of a task the ring accepted is a duplicate).
:class:`Following` is mixed in front of an agent's behaviour: it follows the
newest leader and reports to it what it holds. The standby coordinators and
the ``standby`` components are :mod:`policies.failover`'s.
"""

from __future__ import annotations

from typing import Any

from kossim.sim.kernel import Actor
from kossim.sim.task import Task
from policies.reserve import Reserve, StandIn

__all__ = ["Following", "Leading"]

_CLASSES: dict[tuple[type, type], type] = {}


def _mixed(mixin: type, cls: type) -> type:
    """``cls`` with ``mixin`` in front (one class per pair, made once)."""
    got = _CLASSES.get((mixin, cls))
    if got is None:
        name = f"{mixin.__name__}{cls.__name__}"
        got = _CLASSES[(mixin, cls)] = type(name, (mixin, cls), {})
    return got


_SUBMIT = {
    "new": "resent after its submission was lost: accepted, acked",
    "duplicate": "accepted before (its ack was lost): a duplicate, acked again, not enqueued",
    "ended": "has ended: acked, not enqueued",
    "pending": "resent while its submission is still on its way: ignored",
}


def _ahead(news: tuple[int, int], than: tuple[int, int]) -> bool:
    """Whether leader ``news`` ``(term, rank)`` supersedes ``than``: a higher term, then a
    lower rank."""
    return news[0] > than[0] or (news[0] == than[0] and news[1] < than[1])


class Leading(Reserve):
    """The failover side of a leading coordinator, mixed in front of the policy's own.

    Knows its term and rank, beats to the other coordinators, announces itself
    and rebuilds its views from the agents' ``state`` reports; until an agent
    has reported, its view is down and anything it says of tasks is noted (a
    ``done`` before the report means the report's list is stale for that task).
    """

    ctx: Any
    views: list[Any]
    agents: list[Actor]
    queue: Any
    track: bool
    sends: tuple[str, ...]
    rebuilt: list[bool] | None = None

    def lead(self, roles: Any, term: int, rank: int, rebuilding: bool) -> None:
        ctx = self.ctx
        self.roles = roles
        self.term, self.rank = term, rank
        self.track = True  # which task went where: a report's list replaces the view's
        self.early: set[Task] = set()
        self.rebuilt = [not rebuilding] * len(self.views)
        self.pending = len(self.views) if rebuilding else 0
        self.sends = (*self.sends, "leader", "leader_beat", "cover", "ack")
        self.hold_reserve(roles)
        if rebuilding:
            for view in self.views:
                self._mark(view, False)  # type: ignore[attr-defined]
            for agent in self.agents:
                ctx.send(agent, "leader", (term, rank))
        ctx.send(roles.entry, "leader", (term, rank))
        if roles.heartbeat is not None and len(roles.ring) > 1:
            self.on_lead_beat(None, self)

    # -- acknowledged submission -----------------------------------------------------------
    def on_arrival(self, sender: Any, task: Task) -> None:
        """A submission from the entry: acked, and enqueued unless the ring has it."""
        if sender is self.roles.entry and not self._admit(sender, task, False):
            return
        super().on_arrival(sender, task)  # type: ignore[misc]

    def on_resend(self, sender: Actor, news: tuple[Task, int]) -> None:
        """The entry heard no ack for ``task``: the submission or the ack was lost."""
        task = news[0]
        if self._admit(sender, task, True):
            super().on_arrival(sender, task)  # type: ignore[misc]

    def _admit(self, entry: Actor, task: Task, resent: bool) -> bool:
        verdict = self.roles.admit(task, resent)
        ctx = self.ctx
        if verdict != "pending":
            ctx.send(entry, "ack", (task, self.term))
        if ctx.tracing and (resent or verdict != "new"):
            ctx.log("submit", f"task {task.id} {_SUBMIT[verdict]} (term {self.term})", task)
        return verdict == "new"

    def surrender(self) -> list[Task]:
        """The tasks waiting here, taken out: the coordinator stops leading. With a retry
        queue, the tasks waiting for their retry too (their timers cancelled). (The
        primary's first incarnation became a leader after it started, so its retry queue
        is reached from here rather than hooked at its start.)"""
        tasks = list(self.queue.drain())
        retry_queue = getattr(self, "retry_queue", None)
        if retry_queue is not None:
            tasks.extend(retry_queue.surrender())
        return tasks

    # -- beats ---------------------------------------------------------------------------
    def on_lead_beat(self, sender: None, token: Any) -> None:
        if token is not self:
            return  # a timer of an earlier incarnation of this coordinator
        me = self.ctx.actor
        for other in self.roles.ring:
            if other is not me:
                self.ctx.send(other, "leader_beat", (self.term, self.rank))
        self.ctx.after(self.roles.heartbeat, "lead_beat", self)

    def on_watch(self, sender: None, token: Any) -> None:
        """A timer this actor set while a standby: it leads now."""

    on_started = on_watch

    def on_leader_beat(self, sender: Actor, news: tuple[int, int]) -> None:
        """Another coordinator leads too: the lesser of the two steps down."""
        if _ahead(news, (self.term, self.rank)):
            if self.ctx.tracing:
                self.ctx.log(
                    "step_down",
                    f"{sender.name} leads in term {news[0]} (rank {news[1]}), ahead of this "
                    f"term {self.term} (rank {self.rank})",
                )
            self.roles.step_down(self.ctx.actor, news)

    # -- the view rebuilt from the agents' reports -----------------------------------------
    def on_state(self, sender: Actor, report: tuple[int, int, tuple[Task, ...]]) -> None:
        """An agent's answer to the announcement: its incarnation and the tasks it holds."""
        term, incarnation, tasks = report
        i = sender.index
        rebuilt = self.rebuilt
        if term != self.term or rebuilt is None or rebuilt[i]:
            return
        view = self.views[i]
        known = [t for t in tasks if t not in self.early]
        view.tasks.clear()
        view.tasks.update(known)
        view.queue_length = len(known)
        view.work_outstanding = sum(t.svc for t in known)
        rebuilt[i] = True
        self.pending -= 1
        ctx = self.ctx
        if ctx.tracing:
            ctx.log(
                "rebuild",
                f"{sender.name} reports {len(known)} tasks held, incarnation {incarnation}",
                agent=sender.name,
            )
        self._alive(sender, incarnation)
        if self.pending == 0:
            self.early.clear()
            if ctx.tracing:
                ctx.log("view_rebuilt", f"term {self.term}: every agent has reported")
            self.roles.rebuilt(ctx.actor)

    def _judge(self, i: int) -> bool:
        if self.rebuilt is not None and (
            not self.rebuilt[i] or (i in self.reserve and i not in self.active)
        ):
            self._mark(self.views[i], False)  # type: ignore[attr-defined]
            return False
        return super()._judge(i)  # type: ignore[misc]

    def on_done(self, sender: Actor, task: Task) -> None:
        if self.rebuilt is not None and not self.rebuilt[sender.index]:
            self.early.add(task)  # its report, if still to come, lists it no more
            return
        super().on_done(sender, task)  # type: ignore[misc]

    def on_returned(self, sender: Actor, task: Task) -> None:
        if self.rebuilt is not None and not self.rebuilt[sender.index]:
            self.early.add(task)
            self.reenter(task)  # type: ignore[attr-defined]
            return
        super().on_returned(sender, task)  # type: ignore[misc]

    def on_bounce(self, sender: Actor, news: tuple[Task, int]) -> None:
        if self.rebuilt is not None and not self.rebuilt[sender.index]:
            self.early.add(news[0])
        super().on_bounce(sender, news)  # type: ignore[misc]

    @classmethod
    def leading(cls, coordinator: type) -> type:
        return _mixed(cls, coordinator)


class Following(StandIn):
    """The failover side of an agent, mixed in front of its behaviour: it follows the
    leader that announced itself last (highest term, then lowest rank) and reports to it
    what it holds, at once when up, else when repaired."""

    ctx: Any
    local: Any
    coordinator: Actor
    roles: Any
    leader: tuple[int, int] = (1, 0)
    owed = False

    def on_leader(self, sender: Actor, news: tuple[int, int]) -> None:
        if not _ahead(news, self.leader):
            return
        self.leader = news
        self.coordinator = sender
        ctx = self.ctx
        if ctx.tracing:
            ctx.log("follow", f"{sender.name} leads in term {news[0]}", to=sender.name)
        if ctx.up:
            self._report()
        else:
            self.owed = True

    def _report(self) -> None:
        ctx = self.ctx
        held = (*ctx.running, *self.local)
        ctx.send(self.coordinator, "state", (self.leader[0], ctx.incarnation, held))

    def on_repair(self, suspended: list[Task]) -> None:
        super().on_repair(suspended)  # type: ignore[misc]
        if self.owed:
            self.owed = False
            self._report()

    @classmethod
    def following(cls, agent: type) -> type:
        return _mixed(cls, agent)

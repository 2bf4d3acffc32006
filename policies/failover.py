"""Standby coordinators and the failover protocol (component kind ``standby``).

The coordinators of a run form a ring: the primary (``coordinator``) and the
policy's standbys (``coordinator-standby-<i>``, each on a node of its own).
One of them leads; it sends every other a ``leader_beat`` ``(term, rank)``
every ``heartbeat``. A standby that hears no beat for ``timeout`` suspects the
leader; the standby ``p`` places after the leader in the ring waits ``p + 1``
timeouts, so that the next one in line takes over and the others hear its
beats. A ``hot`` standby takes over at suspicion; a ``cold`` one first starts
its coordinator (``startup``) and stands down if the leader was heard
meanwhile. Taking over, it raises the term, announces itself to every agent and
to the entry (``leader``), and rebuilds its view from the agents' ``state``
reports: until an agent reports, the new leader sends it nothing. Two leaders
(a false suspicion) resolve by the beats: the higher term wins, then the lower
rank; the loser's waiting tasks go back to the entry.

The leader's and the agents' sides of the protocol are mixins
(:mod:`policies.leading`). The engine (:mod:`kossim.sim.failover`) keeps the
physics: which coordinator process is up, the entry buffer where arrivals wait
while no coordinator answers, the tasks of a crashed coordinator's queue, and
the measurements.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from kossim.policy import Behaviour, Params
from kossim.sim.kernel import Actor
from kossim.sim.task import Task
from policies.leading import Following, Leading
from policies.reserve import ReserveParams

__all__ = ["ColdStandby", "Following", "HotStandby", "Leading", "NoStandby"]


class SubmitParams(ReserveParams):
    ack_timeout: float = Field(
        default=1.0,
        gt=0,
        description="time the entry waits for the leader's ack of an arrival before it "
        "re-sends it (to the leader it knows then)",
    )


class NoStandbyParams(SubmitParams):
    pass


class NoStandby(Behaviour):
    """No standby: a crashed coordinator is restarted by its host after its down time and
    rebuilds its view from the agents' reports; nothing is dispatched meanwhile."""

    kind = "standby"
    id = "none"
    description = "no standby: dispatch stops until the coordinator is restarted"
    Params: ClassVar[type[Params]] = NoStandbyParams
    leading = staticmethod(Leading.leading)
    following = staticmethod(Following.following)


class HotParams(SubmitParams):
    count: int = Field(default=1, ge=1, le=8, description="standby coordinators")
    heartbeat: float = Field(default=1.0, gt=0, description="time between the leader's beats")
    timeout: float = Field(
        default=3.0, gt=0, description="silence after which a standby suspects the leader"
    )


class ColdParams(HotParams):
    startup: float = Field(
        default=5.0, ge=0, description="time to start a coordinator once the leader is suspected"
    )


class HotStandby(Behaviour):
    """A standby coordinator: watch the leader's beats; take over when they stop."""

    kind = "standby"
    id = "hot"
    description = "standby coordinators that take over as soon as the leader is suspected"
    Params: ClassVar[type[Params]] = HotParams
    sends: tuple[str, ...] = ("suspect", "trust")
    leading = staticmethod(Leading.leading)
    following = staticmethod(Following.following)

    @property
    def startup(self) -> float:
        return float(getattr(self.params, "startup", 0.0))

    def bind(self, roles: Any, rank: int, term: int, leader: int | None) -> None:
        """Its place: the engine's verbs, its rank in the ring, the term it knows and the
        leader's rank (``None``: restarted, it knows no leader yet)."""
        self.roles = roles
        self.rank, self.term, self.leader = rank, term, leader

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        self.last = ctx.now
        self.starting = -1.0  # when a cold start began (-1: not starting)
        ctx.after(self._deadline() - ctx.now, "watch", self)

    def _deadline(self) -> float:
        n = len(self.roles.ring)
        ahead = n - 1 if self.leader is None else (self.rank - self.leader - 1) % n
        return self.last + self.params.timeout * (ahead + 1)

    def on_leader_beat(self, sender: Actor, news: tuple[int, int]) -> None:
        if news[0] >= self.term:
            self.term, self.leader = news
            self.last = self.ctx.now

    def on_lead_beat(self, sender: None, token: Any) -> None:
        """A timer this actor set while it led: it leads no more."""

    def on_watch(self, sender: None, token: Any) -> None:
        if token is not self or self.starting >= 0:
            return
        ctx = self.ctx
        deadline = self._deadline()
        if ctx.now < deadline:  # a beat came since the timer was set
            ctx.after(deadline - ctx.now, "watch", self)
            return
        if ctx.tracing:
            who = "the leader" if self.leader is None else self.roles.ring[self.leader].name
            ctx.log(
                "suspect",
                f"no beat from {who} since {self.last:.6g} (timeout {self.params.timeout:g}, "
                f"rank {self.rank})",
            )
        self.roles.suspected(ctx.actor, self.leader)
        if self.startup > 0:
            self.starting = ctx.now
            ctx.after(self.startup, "started", self)
        else:
            self.roles.promote(ctx.actor, self.term + 1)

    def on_started(self, sender: None, token: Any) -> None:
        """A cold standby's coordinator has started: take over unless the leader spoke."""
        if token is not self:
            return
        ctx = self.ctx
        began, self.starting = self.starting, -1.0
        if self.last > began:
            if ctx.tracing:
                ctx.log("stand_down", f"a leader was heard during start-up (at {self.last:.6g})")
            ctx.after(max(0.0, self._deadline() - ctx.now), "watch", self)
            return
        self.roles.promote(ctx.actor, self.term + 1)

    # -- what reaches a standby by mistake -----------------------------------------------
    def _leader(self) -> Actor | None:
        return None if self.leader is None else self.roles.ring[self.leader]

    def on_suspect(self, sender: Actor, news: Any) -> None:
        """The failure detector writes to the primary's address: relayed to the leader."""
        leader = self._leader()
        if leader is not None:
            self.ctx.send(leader, "suspect", news)

    def on_trust(self, sender: Actor, news: Any) -> None:
        leader = self._leader()
        if leader is not None:
            self.ctx.send(leader, "trust", news)

    def on_arrival(self, sender: Any, task: Task) -> None:
        self.roles.refuse(self.ctx.actor, "arrival", task)

    def on_resend(self, sender: Any, news: tuple[Task, int]) -> None:
        self.roles.refuse(self.ctx.actor, "resend", news)

    def on_done(self, sender: Actor, task: Task) -> None:
        self.roles.refuse(self.ctx.actor, "done", task)

    def on_returned(self, sender: Actor, task: Task) -> None:
        self.roles.refuse(self.ctx.actor, "returned", task)

    def on_bounce(self, sender: Actor, news: tuple[Task, int]) -> None:
        self.roles.refuse(self.ctx.actor, "bounce", news)

    def on_repaired(self, sender: Actor, news: Any) -> None:
        self.roles.refuse(self.ctx.actor, "repaired", news)

    def on_state(self, sender: Actor, news: Any) -> None:
        self.roles.refuse(self.ctx.actor, "state", news)

    def on_took(self, sender: Actor, news: Any) -> None:
        self.roles.refuse(self.ctx.actor, "took", news)


class ColdStandby(HotStandby):
    """A cold standby: after suspecting the leader it needs ``startup`` before it leads."""

    id = "cold"
    description = "standby coordinators that start a coordinator (startup) once they suspect"
    Params: ClassVar[type[Params]] = ColdParams

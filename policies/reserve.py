"""Standby agents: agent groups held in reserve for the agents they cover.

A reserve agent gets no work until the coordinator believes an agent it covers
is down (a detector's suspicion). The first free reserve agent believed up then
stands in for it (``cover``): it takes over the tasks waiting in the failed
agent's queue (the engine's :meth:`kossim.sim.failover.Failover.hand_over`: the
queue is kept where another agent can reach it; the task on the failed agent's
slot follows the scenario's ``on_failure``), tells the coordinator what it took
(``took``) and gets new work until the covered agent is believed up again
(``uncover``). The groups are the ``standby`` component's ``agents`` and
``covers`` (:mod:`policies.failover`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kossim.policy import Params
from kossim.sim.kernel import Actor
from kossim.sim.task import Task

__all__ = ["Reserve", "ReserveParams", "StandIn"]


class ReserveParams(Params):
    agents: list[str] = Field(
        default_factory=list,
        description="agent groups held in reserve: no work until an agent they cover fails; "
        "then one takes over that agent's waiting tasks and serves until it is back",
    )
    covers: list[str] | None = Field(
        default=None, description="the groups the reserve covers (default: every other group)"
    )


class Reserve:
    """The coordinator's side (mixed into a leading coordinator)."""

    ctx: Any
    views: list[Any]
    agents: list[Actor]
    queue: Any

    def hold_reserve(self, roles: Any) -> None:
        """Keep the reserve agents' views down until they stand in for someone."""
        ctx = self.ctx
        groups = [p.group for p in ctx.profiles]
        self.reserve = {i for i, g in enumerate(groups) if g in roles.reserve}
        covers = roles.covers
        self.coverable = {
            i
            for i, g in enumerate(groups)
            if i not in self.reserve and (covers is None or g in covers)
        }
        self.active: dict[int, int] = {}  # reserve agent -> the agent it covers
        self.covered: dict[int, int] = {}  # covered agent -> its reserve agent
        for i in self.reserve:
            self._mark(self.views[i], False)  # type: ignore[attr-defined]

    def on_suspect(self, sender: Actor, news: tuple[Actor, int, bool]) -> None:
        super().on_suspect(sender, news)  # type: ignore[misc]
        i = news[0].index
        if i in self.active:  # a reserve agent failed: whom it covered waits for another
            self.covered.pop(self.active.pop(i), None)
        if self.reserve and i in self.coverable and i not in self.covered:
            self._cover(i)

    def _cover(self, i: int) -> None:
        failed, suspected = self.failed, self.suspected  # type: ignore[attr-defined]
        recovered = self.recovered  # type: ignore[attr-defined]
        for r in sorted(self.reserve):
            if r not in self.active and not suspected[r] and failed[r] <= recovered[r]:
                break
        else:
            return  # no reserve agent free and believed up
        self.active[r], self.covered[i] = i, r
        ctx = self.ctx
        if ctx.tracing:
            ctx.log(
                "cover",
                f"{self.agents[r].name} stands in for {self.agents[i].name}, believed down",
                agent=self.agents[r].name,
            )
        self._judge(r)  # type: ignore[attr-defined]
        ctx.send(self.agents[r], "cover", self.agents[i])
        self._dispatch()

    def _dispatch(self) -> None:
        if self.pull:  # type: ignore[attr-defined]
            self.pump()  # type: ignore[attr-defined]
        else:
            for task in self.queue.drain():
                self.route(task)  # type: ignore[attr-defined]

    def _alive(self, agent: Actor, incarnation: int) -> None:
        super()._alive(agent, incarnation)  # type: ignore[misc]
        i = agent.index
        r = self.covered.get(i)
        if r is not None and self.views[i].up:  # back: its reserve agent stands down
            del self.covered[i], self.active[r]
            if self.ctx.tracing:
                self.ctx.log(
                    "uncover",
                    f"{agent.name} is back: {self.agents[r].name} returns to the reserve",
                    agent=self.agents[r].name,
                )
            self._judge(r)  # type: ignore[attr-defined]

    def on_took(self, sender: Actor, news: tuple[Actor, tuple[Task, ...]]) -> None:
        """A reserve agent took over the waiting tasks of ``failed``: the views follow."""
        failed, tasks = news
        gone, view = self.views[failed.index], self.views[sender.index]
        for task in tasks:
            self._forget(gone, task)  # type: ignore[attr-defined]
            view.queue_length += 1
            view.work_outstanding += task.svc
            view.tasks.add(task)
        if view.listed and view.queue_length >= view.capacity:
            self._relist(view)  # type: ignore[attr-defined]


class StandIn:
    """The agent's side (mixed into a following agent)."""

    ctx: Any
    roles: Any
    coordinator: Actor

    def on_cover(self, sender: Actor, failed: Actor) -> None:
        """Stand in for ``failed``: take over the tasks waiting in its queue."""
        ctx = self.ctx
        tasks = self.roles.hand_over(failed, ctx.actor)
        if ctx.tracing:
            ctx.log(
                "take_over",
                f"{len(tasks)} tasks waiting at {failed.name} move here",
                agent=failed.name,
            )
        for task in tasks:
            self.on_task(sender, task)  # type: ignore[attr-defined]
        ctx.send(self.coordinator, "took", (failed, tuple(tasks)))

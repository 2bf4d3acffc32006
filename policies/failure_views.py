"""What a ``queueing`` coordinator believes of its agents' failures, and what it does with
the attempts they cost.

The detector's verdicts (``suspect``, ``trust``) and the agents' own news
(``repaired``) decide whether a view counts as up; tasks lost with a crashed
agent are reclaimed, those sent to a suspected one (``requeue``) written off,
and every failed attempt goes through :meth:`FailureViews.attempt_failed`, the
one place a ``retry`` component (:mod:`policies.retry_queue`) or an arbiter
(:mod:`policies.arbitrated`) takes over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kossim.sim.kernel import Actor
from kossim.sim.task import Task
from policies.retry_queue import MAY_STILL_RUN

__all__ = ["FailureViews"]


class FailureViews:
    """The ``suspect``, ``trust`` and ``repaired`` handlers of a queueing coordinator, and
    its failed attempts.

    A mixin: it keeps ``failed`` (the latest failure known per agent), ``recovered``
    (the latest incarnation heard up) and ``suspected`` (the detector's verdict), and
    uses the coordinator's views, queue and dispatch.
    """

    failed: list[int]
    recovered: list[int]
    suspected: list[bool]
    views: list[Any]
    delegated: dict[Task, list[int]]
    requeue: bool
    pull: bool
    queue: Any
    ctx: Any

    if TYPE_CHECKING:  # the coordinator's own upkeep of its views and queue

        def _forget(self, view: Any, task: Task) -> None: ...
        def _mark(self, view: Any, up: bool) -> None: ...
        def pump(self) -> None: ...
        def route(self, task: Task) -> None: ...
        def reenter(self, task: Task) -> None: ...

    def on_suspect(self, sender: Actor, news: tuple[Actor, int, bool]) -> None:
        """The detector suspects ``agent`` of its ``crash``-th failure (``certain``: a fact)."""
        agent, crash, certain = news
        i = agent.index
        if certain:
            self.failed[i] = max(self.failed[i], crash)
        else:
            self.suspected[i] = True
        self._judge(i)
        if certain or not self.requeue:
            self._reclaim(agent)
        else:
            self._write_off(agent)

    def on_trust(self, sender: Actor, news: tuple[Actor, int]) -> None:
        """The detector heard from ``agent`` again, alive in ``incarnation``."""
        agent, incarnation = news
        self.suspected[agent.index] = False
        self._alive(agent, incarnation)

    def on_repaired(self, sender: Actor, incarnation: int) -> None:
        self._alive(sender, incarnation)

    def _alive(self, agent: Actor, incarnation: int) -> None:
        """News that ``agent`` is up in ``incarnation`` (after that many failures)."""
        i = agent.index
        if incarnation > max(self.failed[i], self.recovered[i]):
            self.failed[i] = incarnation  # a failure nobody reported: the tasks lost in it
            self._reclaim(agent)
        self.recovered[i] = max(self.recovered[i], incarnation)
        if self._judge(i):
            if self.pull:
                self.pump()
            else:
                for task in self.queue.drain():
                    self.route(task)

    def _judge(self, i: int) -> bool:
        """Believe agent ``i`` up unless suspected or failed since it last recovered."""
        up = not self.suspected[i] and self.failed[i] <= self.recovered[i]
        self._mark(self.views[i], up)
        return up

    def _reclaim(self, agent: Actor) -> None:
        """Take back the tasks lost with ``agent``: re-enter them, or abandon them."""
        view = self.views[agent.index]
        ctx = self.ctx
        for task in ctx.reclaim(agent):
            book = self.delegated.pop(task, None) if self.delegated else None
            self._forget(self.views[book[0]] if book and book[0] >= 0 else view, task)
            self.attempt_failed(task, "lost", agent)

    def attempt_failed(self, task: Task, why: str, agent: Actor | None = None) -> None:
        """The one place a failed attempt of ``task`` is decided (``why``: ``lost`` with a
        crashed ``agent``, ``bounced`` by a down one, ``suspected``: written off with a
        suspected ``agent``, where it may still run, as after a ``timeout``). Without a
        ``retry`` component: a bounce re-enters; another failure re-enters, or is abandoned
        once out of the scenario's ``max_attempts``; what is re-sent for a suspected agent
        is the engine's answer to ``ctx.recover`` (the task if it was lost, else a copy).
        A ``retry`` component swaps in its own rule (:mod:`policies.retry_queue`); an
        arbiter is asked before either (:mod:`policies.arbitrated`).
        """
        ctx = self.ctx
        if agent is not None and why in MAY_STILL_RUN:
            again = ctx.recover(task, agent)
            if again is None:
                return
            task = again
        if why != "bounced" and task.fresh and task.attempts >= ctx.max_attempts:
            ctx.abandon(task)
        else:
            self.reenter(task)

    def _write_off(self, agent: Actor) -> None:
        """``requeue``, a suspected agent: re-send every task sent there and not reported.

        Whether a task was really lost only the engine knows: it re-sends the
        task itself if so, else a copy (the first copy to finish wins).
        """
        view = self.views[agent.index]
        ctx = self.ctx
        for task in sorted(view.tasks, key=_lineage):
            self._forget(view, task)
            self.attempt_failed(task, "suspected", agent)
        if ctx.tracing:
            ctx.log("write_off", f"{agent.name} suspected: its tasks re-sent", agent=agent.name)


def _lineage(t: Task) -> tuple[int, int]:
    return (t.id, t.copy)

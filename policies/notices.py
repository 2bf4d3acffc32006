"""What a ``queueing`` coordinator hears of tasks its agents pass among themselves.

Agents of the ``delegating`` behaviour send the coordinator notices: ``moved``
(a task is kept by another agent), ``finished`` (a delegated task ended) and
``handback`` (an agent returns a task to the coordinator's queue). The notices
name the agent the coordinator sent the task to (``first``): until a notice
says otherwise, the task counts on that agent's view. Notices may arrive in
any order; the hand-off number orders the "moved" ones, and a task's book
closes once its end is known and every "moved" notice sent for it has arrived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kossim.sim.kernel import Actor
from kossim.sim.task import Task

__all__ = ["DelegationNotices"]


class DelegationNotices:
    """The ``moved``, ``finished`` and ``handback`` handlers of a queueing coordinator.

    A mixin: it keeps ``delegated`` (task -> [view counting it, hand-off of the
    last "moved" applied, "moved" notices seen, notices sent (known at the
    task's end)]) and uses the coordinator's views and view upkeep.
    """

    delegated: dict[Task, list[int]]
    views: list[Any]
    track: bool
    listing: bool
    pull: bool
    ctx: Any

    if TYPE_CHECKING:  # the coordinator's own upkeep of its views and queue

        def _forget(self, view: Any, task: Task) -> None: ...
        def _relist(self, view: Any) -> None: ...
        def pump(self) -> None: ...
        def reenter(self, task: Task) -> None: ...

    def on_moved(self, sender: Actor, news: tuple[Task, Actor, int, int]) -> None:
        """``sender`` keeps ``task`` (sent to ``first``) after hand-off number ``hops``."""
        task, first, hops, _ = news
        book = self._book(task, first)
        book[2] += 1
        if book[0] >= 0 and hops > book[1]:
            self._forget(self.views[book[0]], task)
            view = self.views[sender.index]
            view.queue_length += 1
            svc = task.svc = view.service_time(task)
            view.work_outstanding += svc
            if self.track:
                view.tasks.add(task)
            if self.listing:
                self._relist(view)
            book[0], book[1] = sender.index, hops
        self._drop_record(task, book)
        if self.pull:
            self.pump()

    def on_finished(self, sender: Actor, news: tuple[Task, Actor, int, int]) -> None:
        """A delegated task ended at ``sender`` (completed, or abandoned at its hop limit)."""
        self._settle(news)
        if self.pull:
            self.pump()

    def on_handback(self, sender: Actor, news: tuple[Task, Actor, int, int]) -> None:
        """An agent hands ``task`` back to this queue instead of keeping it."""
        task = self._settle(news)
        task.handoff += self.ctx.now  # the hand-off ends here
        self.reenter(task)

    def _book(self, task: Task, first: Actor) -> list[int]:
        book = self.delegated.get(task)
        if book is None:
            book = self.delegated[task] = [first.index, -1, 0, -1]
        return book

    def _settle(self, news: tuple[Task, Actor, int, int]) -> Task:
        """The task left the agents: forget it on the view that counts it."""
        task, first, _, moves = news
        book = self._book(task, first)
        if book[0] >= 0:
            self._forget(self.views[book[0]], task)
        book[0], book[3] = -1, moves
        self._drop_record(task, book)
        return task

    def _drop_record(self, task: Task, book: list[int]) -> None:
        if book[0] < 0 and book[2] >= book[3]:
            del self.delegated[task]

"""Built-in behaviours for the plain kernel on an instant network: the hot path, fused.

On an instant network, untraced and without network faults, the run's kernel
is the plain :class:`~kossim.sim.kernel.Kernel` and its ``send`` is
``Kernel._send_instant``: count the message if it crosses nodes, then call the
receiver's handler ``dst.handlers[kind](src, payload)``. The engine then swaps
(``kossim.sim.world``, at build time, once the behaviours have started and
unless the run has coordinator failover; :func:`specialise` says when a
behaviour fits) the built-in ``queueing`` coordinator and
``worker`` agent for the subclasses below, whose per-task paths do the same
inline: the task and done messages, the coordinator's own ``_select``,
``_send`` (on a hand-off) and ``_forget``. Every message still counts, and goes
to whatever handler the receiver has then (a paused actor's, a failed-over
coordinator's); decisions, counts and the order of calls are those of the
originals, which a traced run (whose kernel logs every message) keeps. Each
method says which original it inlines: a change there must be made here too
(``tests/unit/test_hot_path.py`` runs both on the same scenarios).
"""

from __future__ import annotations

from typing import Any

from kossim.sim.agent import AgentState
from kossim.sim.kernel import Actor
from kossim.sim.task import Task
from policies.agent import Worker
from policies.coordinator import Queueing

__all__ = ["INSTANT", "InstantQueueing", "InstantWorker", "specialise"]


class InstantQueueing(Queueing):
    """:class:`Queueing` whose task sends inline the instant kernel's delivery.

    The engine swaps it in at build time (``kossim.sim.world``) when the run's
    kernel is the plain :class:`~kossim.sim.kernel.Kernel` on an instant network,
    untraced and without network faults: there ``send`` is
    ``Kernel._send_instant`` (count the message if it crosses nodes, then call
    the receiver's handler), and this class does the same inline, saving a call
    per task. Same decisions, same counts, same order of calls.
    """

    #: The methods inlined here: a hook that replaced one on the instance (a retry timeout
    #: times every ``_send``) needs the original's calls, so the coordinator stays a
    #: :class:`Queueing`.
    INLINED = ("_forget", "_relist", "_select", "_send", "pump")

    _actor: Actor
    _sent: Any

    def _send(self, view: AgentState, task: Task) -> None:
        view.queue_length += 1
        svc = task.svc = task.work / view.speed if not task.skills else view.service_time(task)
        view.work_outstanding += svc
        if self.track:
            view.tasks.add(task)
        if view.listed and view.queue_length >= view.capacity:
            self._relist(view)
        dst, src = self.agents[view.index], self._actor  # Kernel._send_instant, inlined
        if src.node != dst.node:
            self._sent["task"] += 1
        dst.handlers["task"](src, task)

    def on_done(self, sender: Actor, task: Task) -> None:
        """:meth:`Queueing.on_done` with the hand-off's :meth:`_send` inlined (this class
        runs untraced only: no route is logged)."""
        view = self.views[sender.index]
        if self.track and task not in view.tasks:
            return  # written off when the agent was suspected: the view forgot it then
        if self.listing and self.queue and view.up and not self.free and not self._pumping:
            view.queue_length -= 1
            view.work_outstanding = view.work_outstanding - task.svc if view.queue_length else 0.0
            if self.track:
                view.tasks.discard(task)
            head = self.queue.pop()
            if self._ask_lone:
                chosen = self.router.select(head, [view], self.ctx.now)
                if chosen is not view:
                    self._not_offered(chosen, head, 1)
            view.queue_length += 1  # from here: _send(view, head)
            svc = head.svc = head.work / view.speed if not head.skills else view.service_time(head)
            view.work_outstanding += svc
            if self.track:
                view.tasks.add(head)
            if view.listed and view.queue_length >= view.capacity:
                self._relist(view)
            dst, src = self.agents[view.index], self._actor
            if src.node != dst.node:
                self._sent["task"] += 1
            dst.handlers["task"](src, head)
            return
        if self.track:  # _forget(view, task), inlined (the check above stands for its own)
            view.tasks.discard(task)
        view.queue_length -= 1
        view.work_outstanding = view.work_outstanding - task.svc if view.queue_length else 0.0
        if self.listing and not view.listed:
            self._relist(view)
        if self.pull and (self.queue or not self._own_pump):
            self.pump()

    def on_arrival(self, sender: Any, task: Task) -> None:
        """:meth:`Queueing.on_arrival` with :meth:`_select` inlined (untraced: no route log)."""
        if not self.pull:
            self.route(task)
        elif self.listing and self.free and not self.queue:
            cands = self.free
            chosen = self.router.select(task, cands, self.ctx.now)
            if chosen is not cands[0] and not self._is_candidate(chosen, task):
                self._not_offered(chosen, task, len(cands))
            self._send(chosen, task)
        elif self._queue_only and not self.free:
            self.queue.push(task)  # no free slot: pump() would send nothing
        else:
            self.queue.push(task)
            self.pump()


class InstantWorker(Worker):
    """:class:`Worker` whose completion report inlines the instant kernel's delivery
    (swapped in as :class:`InstantQueueing` is, on the same
    condition): the same count and the same call, one call fewer per task."""

    INLINED = ("on_complete", "_fill")

    _actor: Actor
    _sent: Any

    def on_complete(self, task: Task) -> None:
        if self.local:
            self._fill()
        dst, src = self.coordinator, self._actor  # Kernel._send_instant, inlined
        if src.node != dst.node:
            self._sent["done"] += 1
        dst.handlers["done"](src, task)


INSTANT: dict[type, Any] = {Queueing: InstantQueueing, Worker: InstantWorker}
"""The built-in behaviours (exactly these classes, not subclasses) and their variants."""


def specialise(actor: Actor) -> None:
    """Swap ``actor``'s behaviour for its variant, if it has one and it fits: called once
    the behaviours have started, so that what a hook kept of the behaviour (its own
    ``on_done``, its own ``_send``) is the original's, and only where no hook replaced a
    method the variant inlines, nor the behaviour's ``send`` (the kernel's)."""
    b = actor.behaviour
    cls = INSTANT.get(type(b))
    if cls is None or any(name in vars(b) for name in cls.INLINED):
        return
    if b.send is not actor.ctx.send:
        return
    b.__class__ = cls
    b._actor, b._sent = actor, actor.ctx.kernel.sent

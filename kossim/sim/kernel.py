"""The message-passing kernel: actors on nodes, messages over the network, timers.

Every party that decides is an :class:`Actor` placed on a node, with a
behaviour (a registered component) that acts only through its
:class:`Context`. Actors talk only by messages: :meth:`Kernel.send` counts
each message that crosses the network by kind and delivers it after the path
delay, to the receiver's handler ``on_<kind>(sender, payload)``. Messages
between actors on one node, and every message on an instant network (all
latencies the constant 0), are delivered by a direct call: no SimPy event.

The hot path is callbacks on light events (:class:`Call`) in SimPy's heap: a message with
latency is one event, a timer is one event, and nothing here starts a SimPy
process.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from heapq import heappush
from typing import TYPE_CHECKING, Any

from simpy import Environment

from kossim.sim.network import Net
from kossim.sim.task import TRANSIT, Task

if TYPE_CHECKING:
    from kossim.sim.eventlog import EventLog

__all__ = ["Actor", "Call", "Handlers", "Kernel", "Timer", "TracingKernel", "call_after"]

NORMAL = 1
"""SimPy's priority of an ordinary event (``simpy.events.NORMAL``): a :class:`Call` sorts
among timeouts exactly as a :class:`~simpy.events.Timeout` scheduled at the same moment."""


class Call:
    """The least an event needs to ride SimPy's loop: ``Environment.step`` pops it from
    the heap, calls its ``callbacks`` with it and reads ``_ok``.

    The hot path's timeouts (arrivals, completions, messages with latency, timers)
    are these rather than :class:`~simpy.events.Timeout`: no ``__dict__``, no
    per-event callback list (``callbacks`` is a tuple shared by every event of one
    kind and owner) and no Python-level ``__init__`` or ``schedule``. They are
    pushed onto the environment's own heap with its own sequence counter and
    priority, so they run in exactly the order equal Timeouts would.
    """

    __slots__ = ("_value", "callbacks")
    _ok = True  # it never fails: step() raises nothing for it

    _value: Any
    callbacks: Any


def call_after(
    env: Environment, delay: float, callbacks: tuple[Callable[[Any], None], ...], value: Any
) -> Call:
    """Schedule ``callbacks`` to be called with a :class:`Call` carrying ``value`` after
    ``delay`` (non-negative), in SimPy's heap: the same moment and order as a Timeout."""
    ev = Call()
    ev.callbacks = callbacks
    ev._value = value
    queue: list[Any] = env._queue  # its type names Event: a Call walks like one
    heappush(queue, (env._now + delay, NORMAL, next(env._eid), ev))
    return ev


class Handlers(dict[str, Callable[[Any, Any], None]]):
    """An actor's handlers by message kind, looked up once per kind: ``on_<kind>``."""

    __slots__ = ("actor",)

    def __init__(self, actor: Actor) -> None:
        super().__init__()
        self.actor = actor

    def __missing__(self, kind: str) -> Callable[[Any, Any], None]:
        handler = getattr(self.actor.behaviour, "on_" + kind, None)
        if handler is None:
            raise RuntimeError(
                f"{self.actor.kind} {self.actor.name!r} ({type(self.actor.behaviour).__name__}) "
                f"received a {kind!r} message but has no handler on_{kind}"
            )
        self[kind] = handler
        return handler


class Actor:
    """A named party on a node: a behaviour and its context."""

    __slots__ = ("behaviour", "ctx", "handlers", "index", "kind", "name", "node")

    def __init__(self, kind: str, name: str, node: str, index: int = -1) -> None:
        self.kind = kind
        self.name = name
        self.node = node
        self.index = index
        self.behaviour: Any = None
        self.ctx: Any = None
        self.handlers = Handlers(self)

    def __repr__(self) -> str:
        return f"Actor({self.kind} {self.name} on {self.node})"


class Timer:
    """A pending :meth:`Kernel.after`; :meth:`cancel` makes it never fire."""

    __slots__ = ("cancelled", "when")

    def __init__(self, when: float) -> None:
        self.when = when
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Kernel:
    """Delivers messages and timers between the actors of one run, and counts messages."""

    STALL_LIMIT = 1_000_000
    """Zero-delay timers and messages at one simulated instant before a run is declared
    stuck: a protocol that keeps answering itself without time passing would otherwise
    hang the sweep."""

    def __init__(self, env: Environment, net: Net, log: EventLog | None) -> None:
        self.env = env
        self.net = net
        self.log = log
        self.instant = net.instant
        # Every network message is counted; those before the measurement window are
        # subtracted at the end (``_before``), which spares a time test per message.
        self.sent: defaultdict[str, int] = defaultdict(int)
        self._before: dict[str, int] = {}
        self.measure_from = 0.0  # the measurement window starts here (the end of the warm-up)
        self._stall_at = -1.0
        self._stalled = 0
        self.transit: set[Task] = set()  # tasks inside messages on the wire
        self.dropped: set[Task] = set()  # live tasks lost with a message (network faults)
        self.actors: dict[str, Actor] = {}
        self._deliver_cbs = (self._deliver,)
        self._fire_cbs = (self._fire,)
        if self.instant and type(self) is Kernel:
            self.send = self._send_instant  # type: ignore[method-assign]

    def measure(self, now: float, before: dict[str, int] | None = None) -> None:
        """Start the measurement window at ``now``: messages sent so far (or ``before``,
        counted at an earlier time) are left out of :meth:`counts`."""
        self.measure_from = now
        self._before = dict(self.sent) if before is None else dict(before)

    def add(self, actor: Actor) -> Actor:
        if actor.name in self.actors:
            raise ValueError(f"two actors named {actor.name!r}")
        self.actors[actor.name] = actor
        return actor

    def send(
        self, src: Actor, dst: Actor, kind: str, payload: Any = None, carries: Task | None = None
    ) -> None:
        """Deliver ``payload`` to ``dst.on_<kind>(src, payload)`` over the network.

        A message that carries a live task (``payload`` itself, or ``carries``)
        holds it while on the wire: the task is in transit, not lost.
        """
        if src.node == dst.node:
            dst.handlers[kind](src, payload)
            return
        self.sent[kind] += 1
        if self.instant:
            dst.handlers[kind](src, payload)
            return
        env = self.env
        task = carries if carries is not None else payload if payload.__class__ is Task else None
        if task is not None and task.end < 0:
            task.state = TRANSIT
            self.transit.add(task)
        else:
            task = None
        delay = self.net.delay(src.node, dst.node)
        if delay == 0.0:
            self._no_time_passes(src, kind)
        call_after(env, delay, self._deliver_cbs, (src, dst, kind, payload, task))

    def _send_instant(
        self, src: Actor, dst: Actor, kind: str, payload: Any = None, carries: Task | None = None
    ) -> None:
        """:meth:`send` on an instant network: every message is a direct call."""
        if src.node != dst.node:
            self.sent[kind] += 1
        dst.handlers[kind](src, payload)

    def _deliver(self, ev: Any) -> None:  # a Call (a FaultyKernel's: a Timeout)
        src, dst, kind, payload, task = ev._value
        if task is not None:
            self.transit.discard(task)
        dst.handlers[kind](src, payload)

    def after(self, actor: Actor, delay: float, kind: str, payload: Any = None) -> Timer:
        """Call ``actor``'s ``on_<kind>(None, payload)`` after ``delay``, unless cancelled or
        the actor runs another behaviour by then."""
        if delay <= 0:
            if delay < 0:
                raise ValueError(f"negative timer delay {delay} from {actor.name!r}")
            self._no_time_passes(actor, kind)
        timer = Timer(self.env._now + delay)
        call_after(self.env, delay, self._fire_cbs, (actor, kind, payload, timer, actor.behaviour))
        return timer

    def _no_time_passes(self, actor: Actor, kind: str) -> None:
        """Count zero-delay events at this instant; fail the run past :attr:`STALL_LIMIT`."""
        now = self.env._now
        if now != self._stall_at:
            self._stall_at, self._stalled = now, 0
        self._stalled += 1
        if self._stalled > self.STALL_LIMIT:
            raise RuntimeError(
                f"no progress in simulated time: {self._stalled:,} zero-delay timers and "
                f"messages at time {now:g} (the last a {kind!r} of {actor.name!r}); a protocol "
                "that answers itself without time passing never ends"
            )

    def _fire(self, ev: Call) -> None:
        actor, kind, payload, timer, behaviour = ev._value
        # A timer belongs to the behaviour that set it: one that crashed, or that the actor
        # no longer runs (a coordinator restarted as a standby), never hears of it.
        if not timer.cancelled and actor.behaviour is behaviour:
            actor.handlers[kind](None, payload)

    def counts(self) -> dict[str, int]:
        """Network messages in the measurement window, by kind."""
        if self.measure_from == float("inf"):  # the window never opened
            return {}
        before = self._before
        return {kind: n - before.get(kind, 0) for kind, n in self.sent.items()}


class TracingKernel(Kernel):
    """A kernel that also writes every message into the execution log (``--trace``).

    A subclass rather than a flag, so that an untraced run pays nothing for it.
    """

    log: EventLog

    def send(
        self, src: Actor, dst: Actor, kind: str, payload: Any = None, carries: Task | None = None
    ) -> None:
        self.log.message(self.env._now, src, dst, kind, carries or payload)
        super().send(src, dst, kind, payload, carries)

    def after(self, actor: Actor, delay: float, kind: str, payload: Any = None) -> Timer:
        self.log.timers.append((self.env._now, actor.name, kind, delay))
        return super().after(actor, delay, kind, payload)

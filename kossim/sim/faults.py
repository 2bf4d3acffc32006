"""Network faults as physics: lost messages, jittered delays, partitions.

:class:`FaultyKernel` replaces the kernel only in a run whose scenario has
network faults or a timeline (``loss``, ``jitter``, ``partitions``, a link's
``loss``, ``timeline:``), so the default path is untouched.

* **Loss.** A message crosses the links of its path; on each it is lost with
  the link's probability (``network.loss``, a link's own ``loss``, or a
  timeline ``link`` change), drawn from a stream per link and direction
  (``netloss:<a>><b>``). Messages between actors on one node are never lost.
* **Jitter.** One draw of ``network.jitter`` (stream ``net:jitter``) is added to
  each network message's delay: messages may overtake each other.
* **Partitions.** A partition maps nodes to sides; a message is dropped when two
  consecutive nodes of its path are on different sides of a partition in force,
  checked when it is sent and again when it would be delivered (a cut that
  starts while a message is on the wire drops it, as a link going down would).

A dropped message that carries a live task leaves the task ``DROPPED``: not
lost, but held in :attr:`Kernel.dropped` until a coordinator recovers it
(``ctx.recover(task, agent)`` returns the task itself); one still dropped at
the end counts as ``dropped``. Drops are counted by kind (``messages_dropped``)
and logged with their reason (``drop``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from simpy import Environment
from simpy.events import Timeout

from kossim.config.models import COORDINATOR, Network
from kossim.dists import Uniform, lean_sampler, sampler
from kossim.sim.kernel import Actor, Kernel, TracingKernel
from kossim.sim.network import Net
from kossim.sim.streams import stream
from kossim.sim.task import DROPPED, TRANSIT, Task

if TYPE_CHECKING:
    from kossim.sim.eventlog import EventLog

__all__ = ["DROP_MARK", "Cuts", "FaultyKernel", "TracingFaultyKernel", "faulty_kernel"]

DROP_MARK = "dropped:"
"""Drops are counted in the kernel's ``sent`` under ``dropped:<kind>`` (so that warm-up
snapshots cover them); :meth:`FaultyKernel.counts` leaves them out of ``messages``."""

_UNIT = Uniform(dist="uniform", low=0.0, high=1.0)


class Cuts:
    """The partitions in force: each maps the nodes it lists to a side (the rest: -1)."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active: dict[Any, dict[str, int]] = {}

    def add(self, key: Any, sides: Iterable[Iterable[str]]) -> None:
        self.active[key] = {n: i for i, side in enumerate(sides) for n in side}

    def remove(self, key: Any) -> bool:
        return self.active.pop(key, None) is not None

    def apart(self, a: str, b: str) -> bool:
        """Whether nodes ``a`` and ``b`` are on different sides of some partition."""
        return any(m.get(a, -1) != m.get(b, -1) for m in self.active.values())


class FaultyKernel(Kernel):
    """A kernel whose network loses, delays unevenly and partitions messages."""

    def __init__(
        self, env: Environment, net: Net, log: EventLog | None, spec: Network, seed: int
    ) -> None:
        super().__init__(env, net, log)
        self.cuts = Cuts()
        self._seed = seed
        self.default_loss = spec.loss
        self.link_loss: dict[tuple[str, str], float] = {}
        for link in spec.links:
            if link.loss is not None:
                self.link_loss[(link.a, link.b)] = self.link_loss[(link.b, link.a)] = link.loss
        self._losers: dict[tuple[str, str], Callable[[], float]] = {}
        self._hopping: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.jitter = lean_sampler(spec.jitter, stream(seed, "net:jitter")) if spec.jitter else None
        self.instant = net.instant and self.jitter is None
        #: Per (sender, receiver on the coordinator's node, where the detectors are): was the
        #: last of the sender's messages to the receiver that met its fate (delivered or
        #: dropped) cut by a partition? A detector's silence about an agent is then a cut's.
        self.cut_off: dict[tuple[str, str], bool] = {}

    # -- the path's links ----------------------------------------------------------------
    def links(self, src: str, dst: str) -> list[tuple[str, str]]:
        """The links ``(a, b)`` a message from ``src`` to ``dst`` crosses, in order."""
        key = (src, dst)
        got = self._hopping.get(key)
        if got is None:
            got = self._hopping[key] = list(pairwise(self.net._hops(src, dst)))
        return got

    def cut(self, src: str, dst: str) -> bool:
        """Whether a partition in force separates two consecutive nodes of the path."""
        if not self.cuts.active or src == dst:
            return False
        apart = self.cuts.apart
        return any(apart(a, b) for a, b in self.links(src, dst))

    def loss(self, a: str, b: str) -> float:
        return self.link_loss.get((a, b), self.default_loss)

    def _lost_on(self, src: str, dst: str) -> str | None:
        """The link the message is lost on (one draw per lossy link), else ``None``."""
        for a, b in self.links(src, dst):
            p = self.link_loss.get((a, b), self.default_loss)
            if p > 0.0:
                draw = self._losers.get((a, b))
                if draw is None:
                    draw = self._losers[(a, b)] = sampler(
                        _UNIT, stream(self._seed, f"netloss:{a}>{b}")
                    )
                if draw() < p:
                    return f"lost on link {a}-{b} (loss {p:g})"
        return None

    # -- sending ---------------------------------------------------------------------------
    def send(
        self, src: Actor, dst: Actor, kind: str, payload: Any = None, carries: Task | None = None
    ) -> None:
        if src.node == dst.node:  # never lost, never late
            dst.handlers[kind](src, payload)
            return
        self.sent[kind] += 1
        task = carries if carries is not None else payload if payload.__class__ is Task else None
        why = (
            "partition: the path is cut"
            if self.cut(src.node, dst.node)
            else self._lost_on(src.node, dst.node)
        )
        if why is not None:
            self._drop(src, dst, kind, task, why)
            return
        if task is not None and task.end >= 0:
            task = None  # a report of an ending: the task is not on the wire
        if self.instant:
            dst.handlers[kind](src, payload)
            if dst.node == COORDINATOR:  # where detectors listen; after: a verdict it prompts
                self.cut_off[(src.name, dst.name)] = False
            return
        delay = self.net.delay(src.node, dst.node)
        if self.jitter is not None:
            delay += self.jitter()
        if task is not None:
            task.state = TRANSIT
            self.transit.add(task)
        if delay == 0.0:
            self._no_time_passes(src, kind)
        ev = Timeout(self.env, delay, (src, dst, kind, payload, task))
        ev.callbacks.append(self._deliver)

    def _deliver(self, ev: Timeout) -> None:
        src, dst, kind, payload, task = ev._value
        if task is not None:
            self.transit.discard(task)
        if self.cuts.active and self.cut(src.node, dst.node):
            self._drop(src, dst, kind, task, "partition: cut while on the wire")
            return
        dst.handlers[kind](src, payload)
        if dst.node == COORDINATOR:  # where detectors listen; after: a verdict it prompts
            self.cut_off[(src.name, dst.name)] = False

    def _drop(self, src: Actor, dst: Actor, kind: str, task: Task | None, why: str) -> None:
        """Count and log a lost message; a live task it carried is ``DROPPED`` (a report of
        a task that has ended is logged with the task, which stays as it ended)."""
        self.sent[DROP_MARK + kind] += 1
        if dst.node == COORDINATOR:
            self.cut_off[(src.name, dst.name)] = why.startswith("partition")
        live = task is not None and task.end < 0 and not task.cancelled
        if live:
            assert task is not None
            task.state = DROPPED
            self.dropped.add(task)
        if self.log is not None:
            self.log.record(
                self.env._now,
                "drop",
                "network",
                f"{kind} from {src.name} to {dst.name} dropped: {why}"
                + (f"; task {task.id} dropped with it" if live and task is not None else ""),
                task,
                {"src": src.name, "dst": dst.name, "message": kind},
            )

    # -- counts ----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return {k: n for k, n in super().counts().items() if not k.startswith(DROP_MARK)}

    def drop_counts(self) -> dict[str, int]:
        """Messages dropped in the measurement window, by kind."""
        got = super().counts()
        return {k[len(DROP_MARK) :]: n for k, n in got.items() if k.startswith(DROP_MARK)}


class TracingFaultyKernel(TracingKernel, FaultyKernel):
    """``--trace`` with network faults: every message logged, then sent (or dropped)."""


def faulty_kernel(
    env: Environment, net: Net, spec: Network, seed: int, log: EventLog | None
) -> FaultyKernel:
    """The faulty kernel for a run, traced into ``log`` unless it is ``None``."""
    if log is not None:
        return TracingFaultyKernel(env, net, log, spec, seed)
    return FaultyKernel(env, net, None, spec, seed)

"""Shared resources and the truth about who wrote them: the physics under lock protocols.

A scenario's ``resources`` are placed, each on its node, as two actors:

* ``lock:<R>``, the lock service, whose behaviour is the policy's ``locks``
  component (:mod:`policies.locks`): it grants, renews, expires and releases
  leases by message, each grant with the next *fencing token* (1, 2, ...). It
  reports what it does through its :class:`LockContext` (``granted``,
  ``renewed``, ``expired``), which the engine counts;
* ``resource:<R>``, the resource itself (engine physics, :class:`Resource`).
  A holder of an exclusive lock writes it by message at the end of its task,
  carrying its token. The resource knows the truth: the newest token written
  so far. A write with an older token is a *lost update*, a holder whose lease
  ran out overwriting the work of one granted after it: with fencing on
  (``fencing: true``, the resource checks tokens) it is refused (``fenced``,
  counted in ``fenced_writes``) and the writer's attempt fails; without
  fencing it is accepted and counted in ``safety_violations``.

An agent's task that locks resources is served like any other, but it ends
only when its writes are accepted: agents of a scenario with locked task types
are of a :func:`deferring` class, whose completions of those tasks go to the
behaviour's ``on_serviced(task)`` instead of ending them, and the behaviour
ends them (``AgentContext.complete``) once the resources answered.

The figures (:data:`LOCK_METRICS`, scopes ``all`` and ``resource=R``) are kept
by the engine's :class:`LockBook`, placed as a passive actor ``locks`` on the
coordinator's node; nothing here exists in a scenario without resources.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from simpy.events import Timeout

from kossim.analysis.metrics import LOCK_METRICS
from kossim.config.models import COORDINATOR
from kossim.registry import build, resolve
from kossim.runspec import MetricRow
from kossim.sim.agent import Agent, AgentState
from kossim.sim.context import ServiceContext
from kossim.sim.kernel import Actor
from kossim.sim.streams import stream
from kossim.sim.task import Task

if TYPE_CHECKING:
    from kossim.sim.world import World

__all__ = ["LockBook", "LockContext", "Resource", "deferring", "place", "place_locks"]


class _Figures:
    """One resource's counts in the measurement window."""

    __slots__ = (
        "contended",
        "expiries",
        "fenced",
        "grants",
        "renewals",
        "requests",
        "tokens",
        "violations",
        "waits",
        "withdrawn",
        "writes",
    )

    def __init__(self) -> None:
        self.grants = self.expiries = self.renewals = 0
        self.contended = 0
        self.requests = 0  # received in the whole run (with tokens: the requests waiting)
        self.withdrawn = 0  # requests taken out of the queue by an arbiter's decision
        self.writes = self.fenced = self.violations = 0
        self.waits: list[float] = []
        self.tokens: list[int] = []  # every token granted, in order (the whole run)


class LockBook:
    """The engine's books of every resource: grants, waits, expiries, renewals, writes.

    A passive actor's behaviour (it handles no message): its ``metric_rows`` are
    the run's lock metrics.
    """

    sends: tuple[str, ...] = ()

    def __init__(self, world: World, names: list[str]) -> None:
        self.world = world
        self.figures = {name: _Figures() for name in names}

    def on_start(self, ctx: Any) -> None:
        self.ctx = ctx

    def held(self) -> list[Task]:
        return []

    def measuring(self) -> bool:
        kernel = self.world.kernel
        return kernel.env._now >= kernel.measure_from

    def metric_rows(self, start: float, end: float) -> list[MetricRow]:
        rows: list[MetricRow] = []
        every = list(self.figures.values())
        for scope, figs in [
            ("all", every),
            *((f"resource={n}", [f]) for n, f in self.figures.items()),
        ]:
            waits = np.asarray([w for f in figs for w in f.waits], dtype=float)
            values = {
                "lock_grants": float(sum(f.grants for f in figs)),
                "lock_wait_mean": float(waits.mean()) if waits.size else float("nan"),
                "lock_wait_p95": float(np.percentile(waits, 95)) if waits.size else float("nan"),
                "lock_waiting": float(sum(f.requests - len(f.tokens) - f.withdrawn for f in figs)),
                "lock_contended": float(sum(f.contended for f in figs)),
                "lease_expiries": float(sum(f.expiries for f in figs)),
                "lease_renewals": float(sum(f.renewals for f in figs)),
                "resource_writes": float(sum(f.writes for f in figs)),
                "fenced_writes": float(sum(f.fenced for f in figs)),
                "safety_violations": float(sum(f.violations for f in figs)),
            }
            rows.extend((name, scope, values[name]) for name in LOCK_METRICS)
        return rows


class LockContext(ServiceContext):
    """A lock service's context: its resource, and the reports the engine counts."""

    __slots__ = ("book", "figures", "resource")

    def __init__(self, world: World, actor: Actor, book: LockBook, resource: str) -> None:
        super().__init__(world, actor)
        self.book = book
        self.resource = resource
        self.figures = book.figures[resource]

    def requested(self) -> None:
        """A request for this resource's lock joined the service's queue."""
        self.figures.requests += 1

    def granted(self, task: Task, token: int, waited: float, holder: Actor) -> None:
        """A lease on this resource went to ``holder`` for ``task`` with ``token``, after
        ``waited`` in the service's queue."""
        f = self.figures
        f.tokens.append(token)
        if self.book.measuring():
            f.grants += 1
            f.waits.append(waited)
        if self.tracing:
            self.log(
                "grant",
                f"{self.resource}: token {token} to {holder.name} for task {task.id} "
                f"after waiting {waited:.4g}",
                task,
                token=token,
                agent=holder.name,
            )

    def contended(
        self, task: Task, waited: float, ahead: int, holders: int, again: bool = False
    ) -> None:
        """A request for ``task`` has waited ``waited``, beyond the service's bound, with
        ``ahead`` requests before it and ``holders`` leases held (``again``: reported
        before, counted once in ``lock_contended``)."""
        if not again and self.book.measuring():
            self.figures.contended += 1
        if self.tracing:
            self.log(
                "lock_contended",
                f"{self.resource}: task {task.id} has waited {waited:.4g} for the lock, "
                f"{ahead} requests ahead, {holders} held" + (" (still)" if again else ""),
                task,
                waited=waited,
            )

    def withdrawn(self, task: Task, holder: Actor, waited: float, action: str, why: str) -> None:
        """The request of ``holder`` for ``task`` left the queue after ``waited``: the
        arbiter decided ``action`` (``abort`` or ``reassign``) on its contention."""
        self.figures.withdrawn += 1
        if self.tracing:
            self.log(
                "lock_withdraw",
                f"{self.resource}: request of {holder.name} for task {task.id} withdrawn "
                f"after waiting {waited:.4g}: the arbiter decided {action}{why}",
                task,
                decision=action,
                agent=holder.name,
            )

    def renewed(self) -> None:
        if self.book.measuring():
            self.figures.renewals += 1

    def expired(self, task: Task, token: int, holder: Actor, silent: float) -> None:
        """The lease ``token`` ran out: nothing heard from its holder for ``silent``."""
        if self.book.measuring():
            self.figures.expiries += 1
        if self.tracing:
            self.log(
                "lease_expiry",
                f"{self.resource}: token {token} of {holder.name} (task {task.id}) expires, "
                f"no renewal for {silent:.4g}",
                task,
                token=token,
                agent=holder.name,
            )


class Resource:
    """A resource's physics: it accepts or (fencing) refuses writes by their tokens."""

    sends: tuple[str, ...] = ("written", "fenced")

    def __init__(self, book: LockBook, name: str, fencing: bool) -> None:
        self.figures = book.figures[name]
        self.book = book
        self.name = name
        self.fencing = fencing
        self.newest = 0  # the newest token written

    def on_start(self, ctx: Any) -> None:
        self.ctx = ctx

    def held(self) -> list[Task]:
        return []

    def on_write(self, sender: Actor, write: tuple[Task, int]) -> None:
        task, token = write
        ctx, f = self.ctx, self.figures
        measuring = self.book.measuring()
        if token < self.newest and self.fencing:
            if measuring:
                f.fenced += 1
            if ctx.tracing:
                ctx.log(
                    "fenced_write",
                    f"{self.name}: write of {sender.name} (task {task.id}) refused, token "
                    f"{token} older than {self.newest} written",
                    task,
                    token=token,
                )
            ctx.send(sender, "fenced", write)
            return
        if measuring:
            f.writes += 1
        if token < self.newest:
            if measuring:
                f.violations += 1
            if ctx.tracing:
                ctx.log(
                    "safety_violation",
                    f"{self.name}: stale write of {sender.name} (task {task.id}) accepted, "
                    f"token {token} overwrites token {self.newest}'s write (no fencing)",
                    task,
                    token=token,
                )
        else:
            self.newest = token
        ctx.send(sender, "written", write)


def place_locks(world: World) -> None:
    """Place the book, and a lock service and a resource per declared resource (only when
    the policy runs a lock service)."""
    resources = world.exp.scenario.resources
    spec = resolve("locks", world.policy.locks)
    if not resources or not getattr(spec.cls, "grants", False):
        return
    book = LockBook(world, [r.name for r in resources])
    place(world, "locks", "locks", COORDINATOR, book, ServiceContext)
    fencing = bool(getattr(spec.params, "fencing", False))
    for r in resources:
        node = r.node or COORDINATOR
        service = build(spec, stream(world.seed, f"policy:{world.policy.name}:lock:{r.name}"))
        place(world, "locks", f"lock:{r.name}", node, service, LockContext, book, r.name)
        place(world, "resource", f"resource:{r.name}", node, Resource(book, r.name, fencing))


def place(
    world: World,
    kind: str,
    name: str,
    node: str,
    behaviour: Any,
    cls: Any = None,
    *more: Any,
) -> Actor:
    """Like ``World.spawn``, with a context of class ``cls``."""
    actor = world.kernel.add(Actor(kind, name, node))
    actor.behaviour = behaviour
    actor.ctx = (cls or ServiceContext)(world, actor, *more)
    world.services.append(actor)
    behaviour.on_start(actor.ctx)
    return actor


def deferring(base: type[Agent]) -> type[Agent]:
    """``base`` (an agent class) whose completions of tasks of locked types go to the
    behaviour's ``on_serviced(task)``: the task is off its slot, but not ended."""
    got = _DEFERRING.get(base)
    if got is not None:
        return got

    class Deferring(base):  # type: ignore[valid-type,misc]
        __slots__ = ("_locked",)

        def __init__(self, world: World, profile: AgentState, node: str, *more: Any) -> None:
            super().__init__(world, profile, node, *more)
            tasks = world.exp.scenario.workload.tasks
            self._locked = frozenset(i for i, t in enumerate(tasks) if t.locks)

        def _done(self, ev: Timeout) -> None:
            task: Task = ev._value
            if task.tidx not in self._locked or task.ev is not ev or task.cancelled:
                super()._done(ev)
                return
            self.account(self.world.env._now)  # up: it just finished work
            self.running.remove(task)
            task.ev = None
            task.remaining = 0.0
            self.behaviour.on_serviced(task)

    Deferring.__name__ = Deferring.__qualname__ = f"Deferring{base.__name__}"
    _DEFERRING[base] = Deferring
    return Deferring


_DEFERRING: dict[type[Agent], type[Agent]] = {}

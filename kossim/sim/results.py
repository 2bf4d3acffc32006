"""The quality of results: which are bad, which reached the user, what shadows cost.

Physics, not policy. An agent of a group with ``bad_results: q`` returns a
bad result with probability ``q`` for every task it completes, drawn at the
completion on the agent's own stream ``results:<agent>``: the k-th result of
an agent is bad or good alike under every policy (common random numbers, as
far as the policies give the agent the same number of tasks). Only agents
with ``q > 0`` are of a :func:`fallible` agent class; the others never draw, so
a fleet without bad agents pays nothing.

A result is *delivered* when it ends its task (the task is recorded as
completed). A shadow copy's result (see :meth:`kossim.sim.ledger.Ledger.shadow`)
is never delivered: it is only compared. What protocols learn of a result
they learn from the ``done`` message that carries it (``task.bad``, read by a
coordinator only when it verifies the result).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simpy.events import Timeout

from kossim.dists import Uniform, sampler
from kossim.runspec import MetricRow
from kossim.sim.agent import Agent, AgentState
from kossim.sim.streams import stream
from kossim.sim.task import DONE, Task

if TYPE_CHECKING:
    from kossim.sim.world import World

__all__ = ["Results", "fallible"]


def fallible(base: type[Agent]) -> type[Agent]:
    """``base`` (an agent class) whose completed results are bad with probability
    ``bad_results``, the last argument of its constructor."""
    got = _FALLIBLE.get(base)
    if got is not None:
        return got

    class Fallible(base):  # type: ignore[valid-type,misc]
        __slots__ = ("_bad_p", "_bad_u")

        def __init__(self, world: World, profile: AgentState, node: str, *more: Any) -> None:
            *args, bad_results = more
            super().__init__(world, profile, node, *args)
            self._bad_p = bad_results
            self._bad_u = sampler(
                Uniform(dist="uniform", low=0.0, high=1.0),
                stream(world.seed, f"results:{self.name}"),
            )

        def _done(self, ev: Timeout) -> None:
            task: Task = ev._value
            if task.ev is not ev:
                return  # superseded by a preemption or a failure: no result
            bad = task.bad = self._bad_u() < self._bad_p
            shadow = task in self.world.ledger.shadows  # its result is compared, never delivered
            super()._done(ev)
            if bad and task.measured:
                self.world.results.bad(task, delivered=not shadow)

    Fallible.__name__ = Fallible.__qualname__ = f"Fallible{base.__name__}"
    _FALLIBLE[base] = Fallible
    return Fallible


_FALLIBLE: dict[type[Agent], type[Agent]] = {}


class Results:
    """Bad results of measured tasks, produced and delivered, by task type."""

    __slots__ = ("bad_delivered", "bad_results", "criticality", "ledger", "types")

    def __init__(self, world: World) -> None:
        tasks = world.exp.scenario.workload.tasks
        self.types = [t.type for t in tasks]
        self.criticality = [t.criticality for t in tasks]
        self.ledger = world.ledger
        self.bad_results = 0  # every bad result, shadows' included
        self.bad_delivered = [0] * len(tasks)  # per task type

    def bad(self, task: Task, delivered: bool) -> None:
        """A measured task's result came out bad: delivered if it ended the task (a
        shadow's, ``delivered`` False, never does)."""
        self.bad_results += 1
        if delivered and task.end >= 0 and task.state == DONE:
            self.bad_delivered[task.tidx] += 1

    def rows(self) -> list[MetricRow]:
        """``bad_results``, ``bad_delivered`` (scopes ``all``, ``criticality=C``,
        ``type=T``), ``shadows`` and ``shadow_work``."""
        ledger = self.ledger
        rows: list[MetricRow] = [
            ("bad_results", "all", float(self.bad_results)),
            ("bad_delivered", "all", float(sum(self.bad_delivered))),
        ]
        for level in ("low", "high"):
            n = sum(
                b for b, c in zip(self.bad_delivered, self.criticality, strict=True) if c == level
            )
            rows.append(("bad_delivered", f"criticality={level}", float(n)))
        for name, n in zip(self.types, self.bad_delivered, strict=True):
            rows.append(("bad_delivered", f"type={name}", float(n)))
        rows.append(("shadows", "all", float(ledger.shadow_copies)))
        rows.append(("shadow_work", "all", ledger.shadow_work))
        return rows

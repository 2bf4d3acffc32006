"""The run's arbitration desk: asks the policy's arbiter, logs and counts every answer.

Built only when the policy names an ``arbiter``; otherwise the world holds
``None`` and ``ctx.arbitrate`` answers :data:`kossim.arbiter.WAIT` without
building an event. Arbitrations are rare (a failure, a deadline at risk, an
auction without a bid), so each is kept as ``(time, kind, action)`` and the
metrics count those inside the measurement window.
"""

from __future__ import annotations

from collections import Counter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from kossim.analysis.metrics import ARBITER_METRICS
from kossim.arbiter import ACTIONS, EVENT_KINDS, Decision, Event
from kossim.runspec import MetricRow

if TYPE_CHECKING:
    from kossim.sim.kernel import Actor, Kernel
    from kossim.sim.task import Task

__all__ = ["Arbitration"]

_INF = float("inf")


class Arbitration:
    """Asks ``arbiter`` (a component with ``decide(event)``) and keeps its answers."""

    __slots__ = ("arbiter", "kernel", "name", "records")

    def __init__(self, arbiter: Any, kernel: Kernel) -> None:
        self.arbiter = arbiter
        self.kernel = kernel
        self.name = str(getattr(type(arbiter), "id", type(arbiter).__name__))
        self.records: list[tuple[float, str, str]] = []

    def ask(self, actor: Actor, kind: str, task: Task | None, facts: dict[str, Any]) -> Decision:
        """The arbiter's decision on event ``kind`` about ``task``, raised by ``actor``."""
        now = self.kernel.env._now
        if task is None:
            event = Event(kind, now, -1, "", 0, 0, _INF, actor.name, MappingProxyType(facts))
        else:
            event = Event(
                kind,
                now,
                task.id,
                task.type,
                task.priority,
                task.attempts,
                task.deadline,
                actor.name,
                MappingProxyType(facts),
            )
        decision = self._valid(self.arbiter.decide(event), event)
        self.records.append((now, kind, decision.action))
        log = self.kernel.log
        if log is not None:
            why = f"{kind}: {decision.action}" + (
                f" ({decision.reason})" if decision.reason else ""
            )
            fields = {**facts, "event": kind, "decision": decision.action, "arbiter": self.name}
            log.record(now, "arbitrate", actor.name, why, task, fields)
        return decision

    def _valid(self, got: Any, event: Event) -> Decision:
        """A :class:`Decision`, or an action name (reason: none); anything else is an error."""
        if isinstance(got, Decision):
            return got
        if isinstance(got, str) and got in ACTIONS:
            return Decision(got)
        raise RuntimeError(
            f"arbiter {self.name!r} answered {got!r} to a {event.kind!r} event about task "
            f"{event.task}; an arbiter returns a kossim.arbiter.Decision or one of {ACTIONS}"
        )

    def metric_rows(self, start: float, end: float) -> list[MetricRow]:
        """Arbitrations inside ``[start, end]``: every event kind and action has a row."""
        inside = [(k, a) for t, k, a in self.records if start <= t <= end]
        kinds = Counter(k for k, _ in inside)
        actions = Counter(a for _, a in inside)
        rows: list[MetricRow] = [("arbitrations", "all", float(len(inside)))]
        for kind in [*EVENT_KINDS, *sorted(k for k in kinds if k not in EVENT_KINDS)]:
            rows.append(("arbitrations", f"event={kind}", float(kinds[kind])))
        rows.extend(("arbitrations", f"decision={a}", float(actions[a])) for a in ACTIONS)
        acted = (actions["abort"], actions["escalate"], actions["reassign"])
        rows.extend(
            (name, "all", float(n)) for name, n in zip(ARBITER_METRICS[1:], acted, strict=True)
        )
        return rows

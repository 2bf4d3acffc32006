"""Built-in arbiters: who decides when a task meets a high-stakes event.

An arbiter (kind ``arbiter``) answers ``decide(event) -> Decision`` for the
events behaviours raise through ``ctx.arbitrate`` (see :mod:`kossim.arbiter`
for the event kinds and their facts). The built-ins are baselines:

* ``always_wait``: never intervenes (what a policy without an arbiter does,
  but every event is logged and counted);
* ``abort_after``: abandons a task the ``k``-th time an event is raised for it;
* ``escalate_then_abort``: a ladder: escalates the task's priority the first
  ``k - 1`` times, abandons it the ``k``-th;
* ``deadline_guard``: judges by slack (deadline minus now minus the expected
  service time): abandons a task that can no longer make its deadline,
  escalates one whose slack is at most ``risk_slack``, else waits.

Every arbiter takes ``risk_slack``: with it, a coordinator that holds waiting
tasks raises ``deadline_risk`` when a waiting task's slack falls to it
(and again when it reaches 0); without it, no ``deadline_risk`` is raised.
A plain function ``(event) -> Decision`` named ``module:function`` is an
arbiter too (:func:`function_arbiter`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field

from kossim.arbiter import Decision, Event, abort, escalate, wait
from kossim.policy import Component, Params

__all__ = [
    "AbortAfter",
    "AlwaysWait",
    "Arbiter",
    "ArbiterParams",
    "DeadlineGuard",
    "EscalateThenAbort",
    "function_arbiter",
]


class ArbiterParams(Params):
    risk_slack: float | None = Field(
        default=None,
        description="raise deadline_risk for a task waiting at the coordinator once its "
        "slack (deadline - now - expected service) falls to this, and again at 0; "
        "None: no deadline_risk events",
    )


class Arbiter(Component):
    """Base of arbiters: ``decide(event) -> Decision``; ``risk_slack`` from the parameters."""

    kind = "arbiter"
    Params: ClassVar[type[Params]] = ArbiterParams

    @property
    def risk_slack(self) -> float | None:
        value = getattr(self.params, "risk_slack", None)
        return None if value is None else float(value)

    def decide(self, event: Event) -> Decision:
        raise NotImplementedError


class AlwaysWait(Arbiter):
    """Never intervene: the behaviour's default handling, every event logged and counted."""

    id = "always_wait"
    description = "never intervene (the behaviours' defaults), but log and count every event"

    def decide(self, event: Event) -> Decision:
        return wait("always_wait")


class AbortAfterParams(ArbiterParams):
    k: int = Field(default=2, ge=1, description="abandon the task at its k-th event of a kind")


class AbortAfter(Arbiter):
    """Abandon a task the ``k``-th time an event of one kind is raised for it."""

    id = "abort_after"
    description = "abandon a task at its k-th event of a kind (k-th failure, auction, ...)"
    Params = AbortAfterParams

    def decide(self, event: Event) -> Decision:
        k = self.params.k
        if event.count >= k:
            return abort(f"{event.kind} {event.count} times, limit {k}")
        return wait(f"{event.kind} {event.count} of {k}")


class EscalateThenAbort(Arbiter):
    """A ladder: escalate the task's priority at each event before the ``k``-th, then abandon."""

    id = "escalate_then_abort"
    description = "escalate a task's priority at each event before the k-th, abandon at the k-th"
    Params = AbortAfterParams

    def decide(self, event: Event) -> Decision:
        k = self.params.k
        if event.count >= k:
            return abort(f"{event.kind} {event.count} times, limit {k}")
        return escalate(f"{event.kind} {event.count} of {k}")


class DeadlineGuardParams(ArbiterParams):
    risk_slack: float | None = Field(
        default=1.0,
        ge=0,
        description="escalate a task whose slack is at most this (and raise deadline_risk "
        "for waiting tasks then)",
    )
    hopeless_slack: float = Field(
        default=0.0,
        description="abandon a task whose slack is at most this: at 0 it cannot make "
        "its deadline even if served at once by the fastest agent",
    )


class DeadlineGuard(Arbiter):
    """Judge every event by the task's slack: abandon the hopeless, escalate those at risk.

    Tasks without a deadline have infinite slack: they are left alone.
    """

    id = "deadline_guard"
    description = "abandon tasks that can no longer make their deadline, escalate those at risk"
    Params = DeadlineGuardParams

    def decide(self, event: Event) -> Decision:
        slack = event.slack
        params = self.params
        if slack <= params.hopeless_slack:
            return abort(f"slack {slack:.4g}, at most {params.hopeless_slack:g}: hopeless")
        risk = params.risk_slack if params.risk_slack is not None else 0.0
        if slack <= risk:
            return escalate(f"slack {slack:.4g}, at most {risk:g}: at risk")
        return wait(f"slack {slack:.4g}")


_FUNCTIONS: dict[str, type[Arbiter]] = {}


def function_arbiter(fn: Callable[[Event], Any], ident: str) -> type[Arbiter]:
    """An arbiter class whose ``decide`` is the plain function ``fn`` (named ``ident``): how
    a ``module:function`` reference becomes a component. One class per reference."""
    got = _FUNCTIONS.get(ident)
    if got is not None and got.function is fn:  # type: ignore[attr-defined]
        return got
    doc = (fn.__doc__ or "").strip().splitlines()
    cls = type(
        "FunctionArbiter",
        (Arbiter,),
        {
            "id": ident,
            "description": doc[0] if doc else f"the function {ident}",
            "function": staticmethod(fn),
            "decide": lambda self, event: fn(event),
            "__module__": getattr(fn, "__module__", None) or __name__,  # the user's code
        },
    )
    _FUNCTIONS[ident] = cls
    return cls

"""Arbitration: the contract between a behaviour that meets a high-stakes event and an arbiter.

A behaviour that meets an event it should not settle alone (a task failed
again, a deadline at risk, a call for bids that got none, a lock held too
long, an owner cut off by a partition) asks the policy's arbiter through its
context, ``ctx.arbitrate(kind, task, **facts)``, and carries out the
:class:`Decision` it gets back with its own verbs. The arbiter sees a small
frozen :class:`Event` and decides one of four actions:

* ``wait``: do nothing now (the behaviour's own default); ``recheck`` asks
  again after that delay, where the event supports it (``deadline_risk``,
  ``lock_contended``);
* ``reassign``: take the task from where it is to another agent;
* ``escalate``: raise the task's priority by ``step`` tiers (lower number
  first, as the ``priority`` queue orders them);
* ``abort``: end the task, abandoned, for the reason the arbiter gives.

An arbiter is a registered component of kind ``arbiter`` with a method
``decide(event) -> Decision``, or a plain function ``(event) -> Decision``
named as ``module:function``. Without an arbiter every ``ctx.arbitrate``
returns :data:`WAIT` at once. What each event kind means and which facts it
carries is listed in :data:`EVENT_KINDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTIONS",
    "EVENT_KINDS",
    "WAIT",
    "Decision",
    "Event",
    "abort",
    "escalate",
    "reassign",
    "wait",
]

ACTIONS = ("wait", "reassign", "escalate", "abort")
"""What an arbiter may decide."""

EVENT_KINDS: dict[str, str] = {
    "failed": "an attempt of the task was lost with its agent; facts: count (attempts "
    "so far), max_attempts, out_of_attempts, agent, slack, service",
    "deadline_risk": "the task waits at the coordinator and its slack fell below the "
    "arbiter's risk_slack; facts: count (asks so far), slack, service, waited, queued",
    "no_bids": "a call for bids on the task closed without a usable bid; facts: count "
    "(auctions without a bid so far), invited, bids, slack, service",
    "lock_contended": "the task's request waited at a lock service beyond its "
    "contended_after; facts: count, resource, holder (the blocking lease's agent, or None), "
    "waited, ahead (requests before it)",
    "owner_unreachable": (
        "the agent holding the task is suspected (crashed or cut off: the coordinator "
        "cannot tell); facts: count, agent, certain, slack, service"
    ),
}
"""The event kinds the built-in behaviours raise, with the facts each carries. Every
event's facts include ``count``: how many times this kind was raised for the task."""


@dataclass(frozen=True, slots=True)
class Event:
    """What an arbiter is told: the event's kind, when, the task's facts and the event's own.

    ``task`` is the task id (-1 for an event about no task); ``deadline`` is
    absolute (``inf`` without one); ``by`` is the actor that asks.
    """

    kind: str
    time: float
    task: int
    type: str
    priority: int
    attempts: int
    deadline: float
    by: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """How many times this kind of event was raised for the task (1 the first time)."""
        return int(self.facts.get("count", 1))

    @property
    def slack(self) -> float:
        """Time to spare: the deadline minus now minus the expected service time (the
        ``slack`` fact; else the time left to the deadline)."""
        return float(self.facts.get("slack", self.deadline - self.time))

    def get(self, name: str, default: Any = None) -> Any:
        """The fact ``name``, or ``default``."""
        return self.facts.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self.facts[name]


@dataclass(frozen=True, slots=True)
class Decision:
    """An arbiter's answer: one of :data:`ACTIONS` and its reason.

    ``recheck`` (``wait``): ask again after this delay where the event allows;
    ``exclude`` (``reassign``): never to the agent the event names;
    ``step`` (``escalate``): how many priority tiers to raise the task.
    """

    action: str
    reason: str = ""
    recheck: float | None = None
    exclude: bool = True
    step: int = 1

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown arbitration action {self.action!r}; allowed: {ACTIONS}")
        if self.recheck is not None and not self.recheck > 0:
            raise ValueError(f"recheck must be a positive delay (got {self.recheck!r})")
        if self.step < 1:
            raise ValueError(f"escalate step must be at least 1 (got {self.step!r})")


def wait(reason: str = "", recheck: float | None = None) -> Decision:
    """Do nothing now; with ``recheck``, ask again after that delay (where supported)."""
    return Decision("wait", reason, recheck=recheck)


def reassign(reason: str = "", exclude: bool = True) -> Decision:
    """Move the task to another agent (never the one the event names, if ``exclude``)."""
    return Decision("reassign", reason, exclude=exclude)


def escalate(reason: str = "", step: int = 1) -> Decision:
    """Raise the task's priority by ``step`` tiers."""
    return Decision("escalate", reason, step=step)


def abort(reason: str = "") -> Decision:
    """End the task: abandoned."""
    return Decision("abort", reason)


WAIT = Decision("wait", "no arbiter")
"""What ``ctx.arbitrate`` returns when the policy has no arbiter."""

"""Retry components: when a failed attempt of a task is tried again, and when never.

A ``retry`` component is consulted by the coordinator where a failed attempt
re-enters (:mod:`policies.retry_queue`): a task lost with a crashed agent, a
task bounced by an agent that was down, a task written off with a suspected
agent and, with a ``timeout``, an attempt not reported finished in time. It
answers two questions, each from its parameters and its own random stream:
how long the task waits in the retry queue before it is routed again
(:meth:`Retry.delay`), and after how many failed attempts it goes to the
dead-letter queue instead (``max_attempts``).

Its ``delivery`` says what the coordinator may re-send: ``at_least_once``
re-sends every failed attempt, also one that may still run (a timed-out or
written-off attempt: the engine makes a copy, the first copy to finish wins,
the others are cancelled and counted as ``duplicates``); ``at_most_once``
re-sends only what certainly never ran (a bounce), and gives every other
failed attempt up (``given_up``, abandoned).

``backoff`` is exponential backoff with the jitter variants of Marc Brooker's
"Exponential Backoff And Jitter" (AWS Architecture Blog, 2015), for the k-th
retry of a task (k = 1, 2, ...) with ``t = min(cap, base * multiplier**(k-1))``:

* ``none``: ``t``;
* ``full``: uniform on ``[0, t]``;
* ``equal``: ``t/2`` plus uniform on ``[0, t/2]``;
* ``decorrelated``: ``min(cap, uniform(base, 3 * previous))``, ``previous``
  being the task's last delay (``base`` before its first retry).

Every delay lies in ``[0, cap]``.
"""

from __future__ import annotations

from math import log
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from kossim.errors import FieldError
from kossim.policy import Component, Params

__all__ = ["Backoff", "Immediate", "Retry", "RetryParams", "backoff_delay"]

Delivery = Literal["at_least_once", "at_most_once"]
Jitter = Literal["none", "full", "equal", "decorrelated"]


class RetryParams(Params):
    max_attempts: int = Field(
        default=5,
        ge=1,
        description="attempts a task gets; after this many failed ones it is dead-lettered "
        "(abandoned, reason dead_letter)",
    )
    delivery: Delivery = Field(
        default="at_least_once",
        description="at_least_once: re-send every failed attempt (copies of attempts that may "
        "still run: duplicates); at_most_once: re-send only bounces, give the rest up",
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="an attempt not reported finished this long after it was sent has failed "
        "(at_least_once only); none: attempts never time out",
    )
    window: float = Field(
        default=1.0, gt=0, description="width of the sliding window of retry_rate_peak"
    )
    durable: bool = Field(
        default=True,
        description="the timed sends are written to a log the next coordinator reads (a "
        "durable queue): after a failover it times them out again, so an attempt lost on "
        "the wire while its coordinator crashed is re-sent; false: they die with it",
    )

    @model_validator(mode="after")
    def _timeout_needs_retries(self) -> RetryParams:
        if self.timeout is not None and self.delivery == "at_most_once":
            raise FieldError(
                "at_most_once never re-sends an attempt that may still run, so a timeout "
                "would change nothing; drop timeout or choose delivery: at_least_once",
                "timeout",
            )
        return self


class Retry(Component):
    """What every retry component offers: the delay before a retry, and its limits."""

    kind = "retry"
    Params: ClassVar[type[Params]] = RetryParams

    def delay(self, k: int, previous: float) -> float:
        """The wait before the ``k``-th retry of a task (``previous``: its last delay, or 0)."""
        raise NotImplementedError


class Immediate(Retry):
    """Retry at once: the failed attempt re-enters routing the moment it is known failed."""

    id = "immediate"
    description = "re-enter routing at once (the naive baseline), up to max_attempts"

    def delay(self, k: int, previous: float) -> float:
        return 0.0


class BackoffParams(RetryParams):
    base: float = Field(default=1.0, gt=0, description="the first retry's delay before jitter")
    cap: float = Field(default=60.0, gt=0, description="the longest delay")
    multiplier: float = Field(default=2.0, ge=1, description="growth of the delay per retry")
    jitter: Jitter = Field(default="full", description="none, full, equal or decorrelated")

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> BackoffParams:
        if self.cap < self.base:
            raise FieldError(
                f"cap {self.cap:g} is below base {self.base:g}: every delay would be cut to "
                "the cap; raise cap or lower base",
                "cap",
            )
        return self


class Backoff(Retry):
    """Exponential backoff with jitter, capped; ``max_attempts`` attempts, then dead letter."""

    id = "backoff"
    description = (
        "exponential backoff (base, multiplier, cap) with none/full/equal/decorrelated jitter"
    )
    Params = BackoffParams

    def delay(self, k: int, previous: float) -> float:
        p = self.params
        return backoff_delay(p.jitter, k, previous, p.base, p.cap, p.multiplier, self.rng.random())


def backoff_delay(
    jitter: str, k: int, previous: float, base: float, cap: float, multiplier: float, u: float
) -> float:
    """The ``k``-th retry's delay for a uniform draw ``u`` in ``[0, 1)`` (see the module)."""
    if jitter == "decorrelated":
        low, high = base, 3.0 * (previous if previous > 0 else base)
        return min(cap, low + u * (high - low))
    # Past the cap the exponent no longer matters: compare logarithms, so that the power
    # never overflows however many retries a task has had.
    t = cap if (k - 1) * log(multiplier) >= log(cap / base) else base * multiplier ** (k - 1)
    if jitter == "none":
        return t
    if jitter == "full":
        return u * t
    return t / 2 + u * t / 2  # equal

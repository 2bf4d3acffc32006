"""Arbitration hooks: the built-in arbiters' decisions, decisions' validation and the
``arbiter`` kind's configuration (runs: :mod:`tests.unit.test_arbitrated`)."""

from __future__ import annotations

from typing import Any

import pytest

from kossim.arbiter import ACTIONS, EVENT_KINDS, WAIT, Decision, Event, abort, escalate, wait
from kossim.config.models import Experiment
from kossim.errors import FieldError
from kossim.registry import available, resolve
from policies.arbiter import AbortAfter, AlwaysWait, DeadlineGuard, EscalateThenAbort
from tests.unit.test_arbitrated import _failing

_INF = float("inf")


def event(kind: str = "failed", now: float = 10.0, deadline: float = _INF, **facts: Any) -> Event:
    return Event(kind, now, 7, "job", 0, facts.get("count", 1), deadline, "coordinator", facts)


def build(cls: type, **params: Any) -> Any:
    import numpy as np

    return cls(cls.Params(**params), np.random.default_rng(0))


# -- the built-in arbiters ---------------------------------------------------------------------


def test_always_wait_never_acts() -> None:
    """Every event, however dire, gets ``wait``."""
    arbiter = build(AlwaysWait)
    for kind in EVENT_KINDS:
        assert arbiter.decide(event(kind, count=9, slack=-5.0)).action == "wait"
    assert arbiter.risk_slack is None


def test_abort_after_aborts_at_the_kth_event() -> None:
    """``k: 3``: wait at counts 1 and 2, abort from 3 on, for any event kind."""
    arbiter = build(AbortAfter, k=3)
    assert [arbiter.decide(event(count=n)).action for n in (1, 2, 3, 4)] == [
        "wait",
        "wait",
        "abort",
        "abort",
    ]
    assert arbiter.decide(event("no_bids", count=3)).reason == "no_bids 3 times, limit 3"


def test_escalate_then_abort_is_a_ladder() -> None:
    """``k: 3``: escalate at counts 1 and 2, abort at 3."""
    arbiter = build(EscalateThenAbort, k=3)
    assert [arbiter.decide(event(count=n)).action for n in (1, 2, 3)] == [
        "escalate",
        "escalate",
        "abort",
    ]


def test_deadline_guard_judges_by_slack() -> None:
    """Abort at slack <= 0, escalate below ``risk_slack``, else wait; no deadline: wait."""
    arbiter = build(DeadlineGuard, risk_slack=2.0)
    decide = arbiter.decide
    assert decide(event("deadline_risk", slack=-0.1)).action == "abort"
    assert decide(event("deadline_risk", slack=0.0)).action == "abort"
    assert decide(event("deadline_risk", slack=1.5)).action == "escalate"
    assert decide(event("failed", slack=3.0)).action == "wait"
    assert decide(event("failed", now=5.0)).action == "wait"  # no deadline: infinite slack
    # Without a ``slack`` fact the time left to the deadline stands in for it.
    assert decide(event("lock_contended", now=5.0, deadline=6.0)).action == "escalate"
    assert arbiter.risk_slack == 2.0


def test_decisions_are_validated() -> None:
    """Unknown actions, a non-positive recheck and a step below 1 are refused."""
    with pytest.raises(ValueError, match="unknown arbitration action"):
        Decision("retry")
    with pytest.raises(ValueError, match="recheck"):
        wait(recheck=0.0)
    with pytest.raises(ValueError, match="step"):
        escalate(step=0)
    assert abort("why") == Decision("abort", "why")
    assert WAIT.action in ACTIONS


# -- configuration -----------------------------------------------------------------------------


def test_the_arbiter_kind_is_registered_and_validated() -> None:
    """Built-ins by id, parameters checked, an unknown id gets "did you mean"."""
    assert set(available("arbiter")) == {
        "always_wait",
        "abort_after",
        "escalate_then_abort",
        "deadline_guard",
    }
    assert resolve("arbiter", {"id": "abort_after", "k": 2}).params.k == 2
    with pytest.raises(FieldError):
        resolve("arbiter", {"id": "abort_after", "k": 0})
    with pytest.raises(ValueError, match="did you mean 'deadline_guard'"):
        resolve("arbiter", "deadline_gaurd")


def test_a_plain_function_is_only_an_arbiter() -> None:
    """``module:function`` names an arbiter; for another kind it is refused."""
    spec = resolve("arbiter", "tests.unit.test_arbiter:patient")
    assert spec.id == "tests.unit.test_arbiter:patient"
    assert resolve("arbiter", "tests.unit.test_arbiter:patient").cls is spec.cls
    with pytest.raises(ValueError, match="is not a kossim routing component"):
        resolve("routing", "tests.unit.test_arbiter:patient")


def patient(ev: Event) -> Decision:
    """Wait, always."""
    return wait("patient")


def test_the_policy_spec_validates_the_arbiter() -> None:
    """A wrong parameter is located at the arbiter field."""
    cfg = _failing(arbiter={"id": "deadline_guard", "risk_slack": -1})
    with pytest.raises(Exception, match="risk_slack"):
        Experiment.model_validate(cfg)

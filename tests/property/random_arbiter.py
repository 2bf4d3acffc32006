"""A test arbiter that decides at random from its own stream (deterministic per seed): the
property tests name it ``tests.property.random_arbiter:Coin``, a module of its own so that
loading it never re-runs a Hypothesis test module."""

from __future__ import annotations

from pydantic import Field

from kossim.arbiter import ACTIONS, Decision, Event
from policies.arbiter import Arbiter, ArbiterParams


class CoinParams(ArbiterParams):
    risk_slack: float | None = Field(default=1.0)


class Coin(Arbiter):
    """Any action, drawn from its own stream (deterministic per seed)."""

    kind = "arbiter"
    id = "test_coin"
    Params = CoinParams

    def decide(self, event: Event) -> Decision:
        rng = self.rng
        action = ACTIONS[int(rng.integers(len(ACTIONS)))]
        recheck = float(rng.choice([0.1, 1.0])) if rng.random() < 0.5 else None
        if action == "wait":
            return Decision("wait", "coin", recheck=recheck)
        if action == "escalate":
            return Decision("escalate", "coin", step=int(rng.integers(1, 3)))
        if action == "reassign":
            return Decision("reassign", "coin", exclude=bool(rng.random() < 0.5))
        return Decision(action, "coin")

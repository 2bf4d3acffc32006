"""Conservation with shadow copies (trust-gated routing), under failures (Hypothesis).

Shadows are ledger copies that never race their task: they must neither be
recorded nor counted live, nor keep a task from ending, whatever the failure
semantics, dispatch, network latency or verification rate.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kossim.runspec import RunSpec
from kossim.sim import simulate_world
from kossim.sim.task import DONE


def _config(mode: str, dispatch: str, on_failure: str, latency: float, verify: float) -> Any:
    return {
        "name": "t",
        "seeds": 1,
        "horizon": 150.0,
        "scenario": {
            "agents": [
                {"group": "veteran", "count": 3, "trust": 0.95, "bad_results": 0.05},
                {"group": "newcomer", "count": 3, "trust": 0.7, "bad_results": 0.3,
                 "capacity": 2},
            ],
            "network": {"latency": {"dist": "exponential", "mean": latency}}
            if latency > 0 else {},
            "workload": {
                "arrivals": {"process": "poisson", "rate": 2.5},
                "tasks": [
                    {"type": "a", "share": 1, "work": {"dist": "exponential", "mean": 1.0},
                     "criticality": "low"},
                    {"type": "b", "share": 1, "work": {"dist": "exponential", "mean": 1.0}},
                ],
            },
            "failures": {"agents": {"up": {"dist": "exponential", "mean": 30.0},
                                    "down": {"dist": "exponential", "mean": 3.0},
                                    "on_failure": on_failure, "max_attempts": 3}},
        },
        "policies": [{
            "name": "p", "dispatch": dispatch, "routing": "jsq",
            "coordinator": {"id": "trust_gated", "mode": mode, "promote": 0.85,
                            "quarantine": 0.5, "prior_strength": 4.0, "verify": verify},
        }],
    }  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    mode=st.sampled_from(["shadow", "low_criticality"]),
    dispatch=st.sampled_from(["push", "central"]),
    on_failure=st.sampled_from(["resume", "restart", "requeue"]),
    latency=st.sampled_from([0.0, 0.1]),
    verify=st.sampled_from([0.0, 0.5]),
)
# A shadow restarted after a crash reports across a network with latency: once ended,
# its report must not count it live in transit.
@example(seed=23, mode="shadow", dispatch="push", on_failure="restart", latency=0.1, verify=0.0)
def test_shadows_never_break_conservation(
    seed: int, mode: str, dispatch: str, on_failure: str, latency: float, verify: float
) -> None:
    """Every arrival is recorded once (done, abandoned) or live once; no shadow is either."""
    spec = RunSpec.make(_config(mode, dispatch, on_failure, latency, verify), "p", (), seed)
    world, cols = simulate_world(spec)
    ids = cols["id"]
    assert len(ids) == world.arrived == len(set(ids.tolist()))
    live = world.live_tasks()
    assert not any(t in world.ledger.shadows for t in live)
    assert world.in_system == len(live)
    finished = (cols["end"] >= 0).sum()
    assert finished + len(live) == world.arrived
    assert ((cols["state"] == DONE) <= (cols["end"] >= 0)).all()
    assert world.results.bad_results >= sum(world.results.bad_delivered)

"""Delegation trees under manager failures (Hypothesis): nothing is lost, hops stay in depth.

Random fleets, branchings, report periods, decision work, latencies and
failure clocks for the managers (and, in some examples, for the agents, with
each failure semantics): every arrival is completed, abandoned or in flight,
found exactly once, no task runs twice or on a down agent (the engine guard
of ``test_conservation``), and no completed task made more decisions on its
way than the tree is deep (twice the depth less one when tasks enter at the lowest
managers and may climb), however often it was rerouted.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import ABANDONED, DONE
from tests.property.test_conservation import guarded_engine


def _exp(mean: float) -> dict[str, Any]:
    return {"dist": "exponential", "mean": mean}


@st.composite
def tree_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    agents = draw(st.integers(2, 14))
    capacity = draw(st.integers(1, 2))
    latency = draw(st.sampled_from([0.0, 0.02, 0.2]))
    coordinator: dict[str, Any] = {
        "id": "tree",
        "branching": draw(st.sampled_from([2, 3, 4, None])),
        "report_interval": draw(st.sampled_from([0.1, 0.5, 2.0])),
        "decision_time": draw(st.sampled_from([0.0, 0.05, 0.3])),
        "scan_time": draw(st.sampled_from([0.0, 0.01])),
        "decision_capacity": draw(st.integers(1, 2)),
        "entry": draw(st.sampled_from(["root", "leaves"])),
        "room": draw(st.sampled_from([1.0, 2.5])),
        "manager_failures": {
            "up": _exp(draw(st.sampled_from([1.0, 5.0, 20.0]))),
            "down": _exp(draw(st.sampled_from([0.5, 3.0]))),
        },
    }
    scenario: dict[str, Any] = {
        "agents": [{"group": "w", "count": agents, "capacity": capacity}],
        "network": {"latency": {"dist": "constant", "value": latency}},
        "workload": {
            "arrivals": {
                "process": "poisson",
                "rate": agents * capacity * draw(st.sampled_from([0.3, 0.9])),
            },
            "tasks": [{"type": "job", "work": _exp(1.0)}],
        },
    }
    mode = draw(st.sampled_from([None, "resume", "restart", "requeue"]))
    if mode is not None:
        scenario["failures"] = {
            "agents": {"up": _exp(15.0), "down": _exp(2.0), "on_failure": mode, "max_attempts": 3}
        }
    return {
        "name": "tree-property",
        "horizon": 60.0,
        "warmup": 5.0,
        "scenario": scenario,
        "policies": [{"name": "p", "coordinator": coordinator}],
    }


def _found(
    mode: str | None,
    branching: int,
    agents: int,
    rate: float,
    entry: str = "root",
    down: float = 0.5,
) -> dict[str, Any]:
    """A scenario Hypothesis once found looping without time passing: managers failing
    every time unit on an instant network, deciding in no time."""
    scenario: dict[str, Any] = {
        "agents": [{"group": "w", "count": agents, "capacity": 1}],
        "network": {"latency": {"dist": "constant", "value": 0.0}},
        "workload": {
            "arrivals": {"process": "poisson", "rate": rate},
            "tasks": [{"type": "job", "work": _exp(1.0)}],
        },
    }
    if mode is not None:
        scenario["failures"] = {
            "agents": {"up": _exp(15.0), "down": _exp(2.0), "on_failure": mode, "max_attempts": 3}
        }
    failures = {"up": _exp(1.0), "down": _exp(down)}
    coordinator = {"id": "tree", "branching": branching, "report_interval": 0.1, "entry": entry}
    return {
        "name": "tree-property",
        "horizon": 60.0,
        "warmup": 5.0,
        "scenario": scenario,
        "policies": [{"name": "p", "coordinator": {**coordinator, "manager_failures": failures}}],
    }


@given(cfg=tree_scenarios(), seed=st.integers(0, 2**16))
# A manager given back a task by a child that is down must not send it there again.
@example(cfg=_found(None, 2, 6, 1.8), seed=0)
# A task bounced by a down agent must not go straight back to it.
@example(cfg=_found("requeue", 2, 2, 0.6), seed=22550)
# A manager adopted from a taker that is down itself gives a task back to its sender,
# not to that taker (which passed it to the sender again, round and round).
@example(cfg=_found(None, 2, 11, 3.3, down=3.0), seed=0)
# Entry at the lowest managers, which fail (arrivals for a down door reach its parent).
@example(cfg=_found(None, 2, 8, 5.6, "leaves"), seed=3)
@example(cfg=_found("requeue", 2, 6, 3.0, "leaves"), seed=7)
def test_manager_failures_lose_no_task_and_hops_stay_within_depth(
    cfg: dict[str, Any], seed: int
) -> None:
    """Conservation under manager failures; hops of every task at most the tree's depth,
    or with entry at the lowest managers ``2 x depth - 1`` (up to the root, down once)."""
    spec = RunSpec.make(cfg, "p", (), seed)
    with guarded_engine():
        world, cols = simulate_world(spec)
    assert cols["id"].tolist() == list(range(world.arrived)), "each arrival exactly once"
    state = cols["state"]
    live = ~((state == DONE) | (state == ABANDONED))
    assert world.in_system == int(live.sum())
    depth = world.coordinator.shape.depth
    leaves = cfg["policies"][0]["coordinator"].get("entry") == "leaves"
    assert int(cols["hops"].max(initial=0)) <= (2 * depth - 1 if leaves else depth)
    done = state == DONE
    assert (cols["hops"][done] >= 1).all(), "a completed task was delegated at least once"
    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("lost", "all")] == 0
    assert m[("tree_depth", "all")] == depth

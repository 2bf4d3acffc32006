"""Failure detection and task copies on random schedules (Hypothesis, derandomized in CI).

The timeout detector's guarantee: with constant latency ``l``, heartbeat
interval ``h`` and timeout ``T > h``, every crash is suspected between
``T + l - h`` and ``T + l`` after it, and no live agent is ever suspected.
And whatever a detector believes, every task ends exactly once: copies made
for suspected agents are accounted for, nothing is lost.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.recorder import Recorder
from kossim.sim.task import Task
from tests.property.test_conservation import guarded_engine, scenarios


@st.composite
def timeout_setups(draw: st.DrawFn) -> dict[str, Any]:
    """1-4 agents, constant latency, a timeout detector with ``T > h`` and ``l < T``, and
    failure clocks long enough that every crash is seen on its own (uniform up and down
    times, each at least ``T + l + 2h``)."""
    h = draw(st.sampled_from([0.25, 0.5, 1.0]))
    timeout = h + draw(st.sampled_from([0.1, 0.5, 1.5]))
    latency = draw(st.sampled_from([0.0, 0.05, 0.3])) * timeout
    least = timeout + latency + 2 * h
    span = draw(st.sampled_from([0.5, 2.0, 10.0]))
    return {
        "name": "timeout-bounds",
        "horizon": draw(st.sampled_from([40.0, 120.0])),
        "scenario": {
            "agents": [{"group": "w", "count": draw(st.integers(1, 4))}],
            "network": {"latency": {"dist": "constant", "value": latency}},
            "workload": {
                "arrivals": {"process": "poisson", "rate": 0.5},
                "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
            },
            "failures": {
                "agents": {
                    "up": {"dist": "uniform", "low": least, "high": least * (1 + span)},
                    "down": {"dist": "uniform", "low": least, "high": least * (1 + span)},
                    "on_failure": draw(st.sampled_from(["resume", "restart", "requeue"])),
                }
            },
        },
        "policies": [
            {
                "name": "p",
                "dispatch": draw(st.sampled_from(["central", "push"])),
                "detector": {"id": "timeout", "interval": h, "timeout": timeout},
            }
        ],
        "_bounds": (timeout + latency - h, timeout + latency),
    }


@given(setup=timeout_setups(), seed=st.integers(0, 2**16))
def test_timeout_detector_suspects_every_crash_within_its_bounds(
    setup: dict[str, Any], seed: int
) -> None:
    low, high = setup.pop("_bounds")
    world, _ = simulate_world(RunSpec.make(setup, "p", (), seed))
    ledger = world.ledger
    assert ledger.false_suspicions == 0
    for latency in ledger.detection_latencies:
        assert low - 1e-9 <= latency <= high + 1e-9, (latency, low, high)
    end = world.recorder.end_time
    crashes = sum(1 for a in world.agents for t in a.crash_times if t + high < end)
    assert len(ledger.detection_latencies) >= crashes
    assert len(ledger.detection_latencies) <= sum(len(a.crash_times) for a in world.agents)


@st.composite
def suspicious_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A random conservation scenario, with requeue failures, a jittery network and a
    heartbeat detector quick to suspect (many false suspicions, many copies)."""
    cfg = draw(scenarios())
    sc = cfg["scenario"]
    sc["network"] = {"latency": {"dist": "exponential", "mean": draw(st.sampled_from([0.05, 0.3]))}}
    sc["failures"] = {
        "agents": {
            "up": {"dist": "exponential", "mean": draw(st.sampled_from([5.0, 30.0]))},
            "down": {"dist": "exponential", "mean": 1.0},
            "on_failure": "requeue",
            "max_attempts": draw(st.integers(1, 4)),
        }
    }
    h = draw(st.sampled_from([0.25, 0.5]))
    cfg["policies"][0]["detector"] = draw(
        st.sampled_from(
            [
                {"id": "timeout", "interval": h, "timeout": h * 1.2},
                {"id": "timeout", "interval": h, "timeout": h * 3},
                {"id": "phi_accrual", "interval": h, "threshold": 2.0},
            ]
        )
    )
    return cfg


@given(cfg=suspicious_scenarios(), seed=st.integers(0, 2**16))
def test_false_suspicions_never_lose_or_double_a_task(cfg: dict[str, Any], seed: int) -> None:
    """Every task is recorded at most once and accounted for; copies are counted."""
    recorded: list[int] = []
    add = Recorder.add

    def once(rec: Recorder, task: Task) -> None:
        recorded.append(task.id)
        add(rec, task)

    spec = RunSpec.make(cfg, "p", (), seed)
    with guarded_engine(), mock.patch.object(Recorder, "add", once):
        world, cols = simulate_world(spec)
    assert len(recorded) == len(set(recorded)), "a task was recorded twice"
    assert cols["id"].tolist() == list(range(world.arrived)), "each arrival appears once"
    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("lost", "all")] == 0
    assert m[("duplicates", "all")] == world.ledger.duplicates
    assert world.ledger.duplicates <= sum(world.ledger._copies.values())

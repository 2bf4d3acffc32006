"""Partitions and message loss on random schedules (Hypothesis, derandomized in CI).

Whatever the cuts (from the timeline or random clocks) and the loss: every
arrival is accounted for (completed, abandoned, rejected, dropped or in
flight: ``lost`` 0), a task still dropped at the end is counted ``dropped``
and nowhere else, no task is recorded twice, and a live agent that a
partition cuts off is suspected but never counted as a crash detection.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import DONE, DROPPED
from tests.property.test_conservation import guarded_engine


def _const(v: float) -> dict[str, Any]:
    return {"dist": "constant", "value": v}


@st.composite
def faulty_scenarios(draw: st.DrawFn, crashes: bool) -> dict[str, Any]:
    """2-5 agents (some sharing a node), loss, jitter, timeline cuts and partition clocks,
    a heartbeat detector; failures by crash only when ``crashes``."""
    n = draw(st.integers(2, 5))
    shared = draw(st.booleans())
    agents: list[dict[str, Any]] = [{"group": "a", "count": n - 1}, {"group": "b", "count": 1}]
    nodes: list[dict[str, Any]] = []
    if shared:
        nodes = [{"name": "rack"}]
        agents[0]["node"] = "rack"
    names = [f"a-{i}" for i in range(n - 1)] + ["b-0"]
    horizon = draw(st.sampled_from([60.0, 150.0]))
    timeline = []
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.floats(0, horizon))
        length = draw(st.floats(0.5, 30))
        cut = draw(st.lists(st.sampled_from([*names, "coordinator"]), min_size=1, max_size=2))
        timeline.append(
            {"at": at, "kind": "partition", "groups": [sorted(set(cut))], "until": at + length}
        )
    network: dict[str, Any] = {
        "latency": _const(draw(st.sampled_from([0.0, 0.02, 0.2]))),
        "loss": draw(st.sampled_from([0.0, 0.01, 0.2])),
    }
    if draw(st.booleans()):
        network["jitter"] = {"dist": "exponential", "mean": draw(st.sampled_from([0.01, 0.3]))}
    if draw(st.booleans()):
        network["partitions"] = [
            {
                "up": {"dist": "exponential", "mean": draw(st.sampled_from([5.0, 30.0]))},
                "down": {"dist": "exponential", "mean": draw(st.sampled_from([1.0, 10.0]))},
                "size": 1,
            }
        ]
    mode = draw(st.sampled_from(["resume", "restart", "requeue"]))
    up = draw(st.sampled_from([20.0, 80.0])) if crashes else 1e12
    interval = draw(st.sampled_from([0.25, 1.0]))
    return {
        "name": "partitions",
        "horizon": horizon,
        "scenario": {
            "nodes": nodes,
            "agents": agents,
            "network": network,
            "workload": {
                "arrivals": {"process": "poisson", "rate": draw(st.sampled_from([0.5, 2.0]))},
                "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
            },
            "failures": {
                "agents": {
                    "up": {"dist": "exponential", "mean": up},
                    "down": {"dist": "exponential", "mean": 3.0},
                    "on_failure": mode,
                }
            },
            "timeline": timeline or None,
        },
        "policies": [
            {
                "name": "p",
                "dispatch": draw(st.sampled_from(["central", "push"])),
                "detector": {
                    "id": "timeout",
                    "interval": interval,
                    "timeout": interval * draw(st.sampled_from([1.5, 3.0])),
                },
            }
        ],
    }


@given(cfg=faulty_scenarios(crashes=True), seed=st.integers(0, 2**16))
def test_conservation_holds_under_loss_and_partitions(cfg: dict[str, Any], seed: int) -> None:
    with guarded_engine():
        world, cols = simulate_world(RunSpec.make(cfg, "p", (), seed))
    done = cols["id"][cols["state"] == DONE]
    assert len(done) == len(set(done.tolist())), "a task completed twice"
    assert len(cols["id"]) == len(set(cols["id"].tolist())) == world.arrived
    dropped = set(cols["id"][cols["state"] == DROPPED].tolist())
    still = {t.id for t in world.kernel.dropped if t.end < 0 and not t.cancelled}
    assert dropped <= still
    result = simulate(RunSpec.make(cfg, "p", (), seed))
    assert result.status == "ok", result.error
    m = {(k, s): v for k, s, v in result.metrics}
    assert m[("lost", "all")] == 0
    ended = sum(m[(k, "all")] for k in ("completed", "abandoned", "rejected", "dropped"))
    assert ended + m[("in_flight", "all")] == m[("arrived", "all")]
    assert m.get(("partition_suspicions", "all"), 0) <= m[("false_suspicions", "all")]


@given(cfg=faulty_scenarios(crashes=False), seed=st.integers(0, 2**16))
@example(
    cfg={
        "name": "partitions",
        "horizon": 150.0,
        "scenario": {
            "nodes": [],
            "agents": [{"group": "a", "count": 1}, {"group": "b", "count": 1}],
            "network": {
                "latency": {"dist": "constant", "value": 0.0},
                "loss": 0.0,
                "partitions": [
                    {
                        "up": {"dist": "exponential", "mean": 5.0},
                        "down": {"dist": "exponential", "mean": 1.0},
                        "size": 1,
                    }
                ],
            },
            "workload": {
                "arrivals": {"process": "poisson", "rate": 0.5},
                "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
            },
            "failures": {
                "agents": {
                    "up": {"dist": "exponential", "mean": 1000000000000.0},
                    "down": {"dist": "exponential", "mean": 3.0},
                    "on_failure": "resume",
                }
            },
            "timeline": None,
        },
        "policies": [
            {
                "name": "p",
                "dispatch": "push",
                "detector": {"id": "timeout", "interval": 0.25, "timeout": 0.75},
            }
        ],
    },
    seed=0,
)  # a heartbeat and the silence timer at one instant, after a done was delivered
def test_a_partitioned_live_agent_is_never_a_crash_detection(
    cfg: dict[str, Any], seed: int
) -> None:
    """No agent ever crashes: every suspicion is false, none is a detection."""
    world, _ = simulate_world(RunSpec.make(cfg, "p", (), seed))
    ledger = world.ledger
    assert ledger.detection_latencies == []
    assert ledger.false_suspicions == ledger.suspicions
    events = world.scenario_events
    cuts = events.partition_suspicions if events is not None else 0
    assert cuts <= ledger.false_suspicions
    if cfg["scenario"]["network"]["loss"] == 0 and "jitter" not in cfg["scenario"]["network"]:
        # Without loss or jitter (timeout > interval), only a cut silences a live agent.
        assert cuts == ledger.false_suspicions

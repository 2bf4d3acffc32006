"""Coordinator failover on random crash schedules (Hypothesis, derandomized in CI).

Whatever the coordinator's failure schedule, the standbys (none, hot, cold), the
network and the agents' own failures: every arrival is accounted for exactly once
(lost is 0), no task runs in two places nor on a down agent, a run is a function of
its seed, and without a standby the time with no coordinator is exactly the
coordinator's down time within the measurement window. Standby agents (the last
group held in reserve for the others) take over failed agents' queues without
losing or duplicating a task. The link between the entry's node and the standbys'
may lose messages (arrivals, acks, resends, beats; the agents reach the standbys
directly): a task left dropped at the end is one whose resend is still due, so a run
that drains leaves none.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import ABANDONED, DONE
from tests.property.test_conservation import _dist, _same_rows, guarded_engine, scenarios

STANDBYS = (
    "none",
    {"id": "hot", "heartbeat": 0.5, "timeout": 1.5},
    {"id": "hot", "count": 2, "heartbeat": 1.0, "timeout": 0.8},  # suspects live leaders
    {"id": "cold", "heartbeat": 0.5, "timeout": 1.5, "startup": 2.0},
    {"id": "cold", "count": 2, "heartbeat": 0.5, "timeout": 2.0, "startup": 0.5},
)


@st.composite
def failover_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A random conservation scenario whose coordinator fails on a random clock."""
    cfg = draw(scenarios())
    cfg["scenario"].setdefault("failures", {})["coordinator"] = {
        "up": _dist(draw, draw(st.sampled_from([2.0, 8.0, 25.0])), ("constant", "exponential")),
        "down": _dist(draw, draw(st.sampled_from([0.5, 3.0, 10.0])), ("constant", "uniform")),
    }
    standby = draw(st.sampled_from(STANDBYS))
    groups = [g["group"] for g in cfg["scenario"]["agents"]]
    if len(groups) > 1 and draw(st.booleans()):  # the last group stands by for the others
        standby = {"id": "none"} if standby == "none" else dict(standby)
        standby["agents"] = [groups[-1]]
    cfg["policies"][0]["standby"] = standby
    count = standby.get("count", 1) if isinstance(standby, dict) and standby["id"] != "none" else 0
    loss = draw(st.sampled_from([0.0, 0.05, 0.3]))
    if loss and count:
        _lossy_entry_links(cfg, count, loss)
    return cfg


def _lossy_entry_links(cfg: dict[str, Any], count: int, loss: float) -> None:
    """Only the links from the entry's node to the standbys' lose messages: each agent
    reaches each standby by a link of its own, no slower than its path through the
    coordinator's node."""
    scenario = cfg["scenario"]
    network = scenario.setdefault("network", {})
    latency = network.get("latency")
    lossy = latency or {"dist": "constant", "value": 0.05}
    direct = latency or {"dist": "constant", "value": 0.0}
    agents = [f"{g['group']}-{i}" for g in scenario["agents"] for i in range(g["count"])]
    standbys = [f"coordinator-standby-{i}" for i in range(1, count + 1)]
    scenario["nodes"] = [{"name": n} for n in standbys]
    network["links"] = [
        *({"a": "coordinator", "b": n, "latency": lossy, "loss": loss} for n in standbys),
        *({"a": a, "b": n, "latency": direct} for a in agents for n in standbys),
    ]


@given(cfg=failover_scenarios(), seed=st.integers(0, 2**16))
def test_no_task_is_lost_across_failovers(cfg: dict[str, Any], seed: int) -> None:
    spec = RunSpec.make(cfg, "p", (), seed)
    with guarded_engine():
        world, cols = simulate_world(spec)
    n = world.arrived
    assert cols["id"].tolist() == list(range(n)), "each arrival appears exactly once"
    live = ~((cols["state"] == DONE) | (cols["state"] == ABANDONED))
    assert world.in_system == int(live.sum())
    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(k, s): v for k, s, v in result.metrics}
    assert m[("lost", "all")] == 0
    assert _same_rows(result.metrics, simulate(spec).metrics), "same seed, different metrics"
    failover = world.failover
    assert failover is not None
    start = world.measure_start if world.measure_start is not None else world.recorder.end_time
    end = world.recorder.end_time
    outage = m[("coordinator_outage", "all")]
    groups = [g["group"] for g in cfg["scenario"]["agents"]]
    assert 0.0 <= outage <= end - start + 1e-9
    if cfg["policies"][0]["standby"] in ("none", {"id": "none", "agents": [groups[-1]]}):
        spans = [*failover.down_spans]
        spans += [(failover.crashed_at[a.name], end) for a in failover.down]
        down = sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)
        assert abs(outage - down) < 1e-6, (outage, down)
    # acknowledged submission: what is left dropped awaits a resend that is still due
    unacked = failover.door.unacked
    assert all(task in unacked for task in world.kernel.dropped), "dropped, no resend due"
    assert all(deadline >= end for deadline, _, _ in unacked.values()), "a resend overdue"

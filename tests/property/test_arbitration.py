"""Conservation under an arbiter that decides at random (Hypothesis).

The scenarios of :mod:`tests.property.test_conservation` (assorted fleets,
skills, deadlines, loads up to overload, latency, failures under every
semantics), under pull, push or contract-net coordination, with an arbiter
that answers every event with a random action (random ``step``, ``recheck``
and ``exclude`` too) and watches deadlines at a random ``risk_slack``: every
arrival is still accounted for exactly once, no task starts on a down agent,
twice or beyond capacity; every abort leaves its task ended; every
arbitration is logged once; and a run is a pure function of its seed.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kossim.arbiter import ACTIONS
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import ABANDONED, DONE
from tests.property.test_conservation import _same_rows, guarded_engine, scenarios


@st.composite
def arbitrated_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    cfg = draw(scenarios())
    policy = cfg["policies"][0]
    policy["arbiter"] = {
        "id": "tests.property.random_arbiter:Coin",
        "risk_slack": draw(st.sampled_from([None, 0.0, 1.0, 3.0])),
    }
    if draw(st.booleans()):
        policy["coordinator"] = {
            "id": "contract_net",
            "window": draw(st.sampled_from([0.05, 0.3])),
            "k": draw(st.sampled_from([None, 1])),
        }
    return cfg


@given(cfg=arbitrated_scenarios(), seed=st.integers(0, 2**16))
def test_a_random_arbiter_loses_no_task(cfg: dict[str, Any], seed: int) -> None:
    """Whatever the arbiter decides, each arrival ends once or is still live."""
    spec = RunSpec.make(cfg, "p", (), seed, trace=True)
    with guarded_engine():
        world, cols = simulate_world(spec)
    assert cols["id"].tolist() == list(range(world.arrived)), "each arrival appears exactly once"
    state = cols["state"]
    live = ~((state == DONE) | (state == ABANDONED))
    assert world.in_system == int(live.sum())
    assert (cols["end"][live] == -1).all()
    assert world.kernel.log is not None and world.arbitration is not None
    rows = [r for r in world.kernel.log.rows if r[1] == "arbitrate"]
    assert len(rows) == len(world.arbitration.records), "each arbitration logged once"
    ended = set(cols["id"][~live].tolist())
    facts = [json.loads(r[7]) for r in rows]
    aborts = [(r, f) for r, f in zip(rows, facts, strict=True) if f["decision"] == "abort"]
    # a task held by an agent out of reach cannot be aborted: it waits, and the log says so
    out_of_reach = [r for r, f in aborts if f["event"] == "owner_unreachable"]
    refused = {(r[0], r[2]) for r in world.kernel.log.rows if r[1] == "no_abort"}
    assert {(r[0], r[2]) for r in out_of_reach} <= refused
    aborted = {r[2] for r, f in aborts if f["event"] != "owner_unreachable"}
    # an abort ends what its place holds: a copy sent elsewhere before (an owner out of
    # reach reassigned) lives on
    copied = {
        r[2]
        for r, f in zip(rows, facts, strict=True)
        if f["event"] == "owner_unreachable" and f["decision"] == "reassign"
    }
    assert aborted - copied <= ended, "an aborted task is still live"
    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("lost", "all")] == 0
    by_action = sum(m[("arbitrations", f"decision={a}")] for a in ACTIONS)
    assert by_action == m[("arbitrations", "all")]
    assert _same_rows(result.metrics, simulate(spec).metrics), "same seed, different metrics"

"""Conservation under an arbiter that decides at random (Hypothesis).

The scenarios of :mod:`tests.property.test_conservation` (assorted fleets,
skills, deadlines, loads up to overload, latency, failures under every
semantics), under pull, push or contract-net coordination, with an arbiter
that answers every event with a random action (random ``step``, ``recheck``
and ``exclude`` too) and watches deadlines at a random ``risk_slack``: every
arrival is still accounted for exactly once, no task starts on a down agent,
twice or beyond capacity; every abort leaves its task ended; every
arbitration is logged once; and a run is a pure function of its seed.

The same arbiter also decides on lock contention, over the leases test's
scenarios (locked task types, pauses, crashes, loss and partitions) with a
low ``contended_after``: conservation holds, fencing still admits no stale
write, and every task an agent ended on a withdrawn request has ended (unless
a copy of it, sent by an ``owner_unreachable`` reassign, lives on).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from kossim.arbiter import ACTIONS
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import ABANDONED, DONE
from tests.property.test_conservation import _same_rows, guarded_engine, scenarios
from tests.property.test_leases import exclusive_leases, locked_scenarios


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


@st.composite
def contended_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    cfg = draw(locked_scenarios())
    policy = cfg["policies"][0]
    bound = draw(st.sampled_from([0.1, 0.5, 2.0]))
    policy["locks"]["contended_after"] = bound
    if draw(st.booleans()):  # no leases: a holder lost in a crash blocks the queue for good
        policy["locks"] = {"id": "held", "fencing": True, "contended_after": bound}
    policy["arbiter"] = {"id": "tests.property.random_arbiter:Coin", "risk_slack": None}
    return cfg


# Found by this test: an arbiter's ``reassign`` of a restart-lost attempt at the locking
# agent's repair sent the task back but kept its hold: the lease was still renewed, and
# the task was counted twice (queued at the coordinator and held by the agent).
_RESTART_REASSIGN = {
    "name": "conservation",
    "horizon": 20.0,
    "scenario": {
        "agents": [
            {"group": "g0", "count": 1, "capacity": 1, "speed": 0.5, "skills": {}},
            {"group": "g1", "count": 1, "capacity": 1, "speed": 2.0, "skills": {}},
        ],
        "workload": {
            "arrivals": {"process": "poisson", "rate": 1.5},
            "tasks": [{"type": "t0", "work": {"dist": "constant", "value": 0.5}, "locks": ["r0"]}],
        },
        "network": {"latency": {"dist": "exponential", "mean": 0.2}},
        "failures": {
            "agents": {
                "up": {"dist": "constant", "value": 3.0},
                "down": {"dist": "constant", "value": 0.5},
                "on_failure": "restart",
                "max_attempts": 1,
            }
        },
        "resources": [{"name": "r0"}],
    },
    "policies": [
        {
            "name": "p",
            "dispatch": "central",
            "routing": "random",
            "agent": "locking",
            "locks": {"id": "lease", "duration": 0.5, "renew_every": 0.1, "contended_after": 0.1},
            "arbiter": {"id": "tests.property.random_arbiter:Coin", "risk_slack": None},
        }
    ],
}


# The same, on a network without latency: the task handed back came back to the agent
# at once, before the repair let the old hold go, and the repair then let the new one go.
_AT_ONCE = {
    **_RESTART_REASSIGN,
    "scenario": {
        **_RESTART_REASSIGN["scenario"],
        "network": {"latency": {"dist": "constant", "value": 0.0}},
        "workload": {
            "arrivals": {"process": "poisson", "rate": 0.56},
            "tasks": [
                {"type": "t0", "work": {"dist": "constant", "value": 2.0}, "locks": ["r0"]},
                {"type": "t1", "work": {"dist": "constant", "value": 0.5}},
            ],
        },
    },
}


# Under resume, an owner_unreachable reassign copies a task whose request then waits at
# the lock: the original's abort on contention ends only that copy, the other lives on.
_COPIED = {
    **_RESTART_REASSIGN,
    "scenario": {
        **_RESTART_REASSIGN["scenario"],
        "agents": [{"group": "g0", "count": 2, "capacity": 2}],
        "workload": {
            "arrivals": {"process": "poisson", "rate": 5.6},
            "tasks": [{"type": "t0", "work": {"dist": "constant", "value": 0.5}, "locks": ["r0"]}],
        },
        "network": {"loss": 0.0},
        "failures": {
            "agents": {
                "up": {"dist": "constant", "value": 3.0},
                "down": {"dist": "constant", "value": 0.5},
                "on_failure": "resume",
                "max_attempts": 1,
            }
        },
    },
}


# Found by this test: a copy whose sibling finished while it waited for its writes'
# answers (off its slot, but still marked running) was taken off a slot it was not on.
_WRITING = {
    **_COPIED,
    "scenario": {
        **_COPIED["scenario"],
        "agents": [{"group": f"g{i}", "speed": 0.5} for i in range(3)],
        "workload": {
            "arrivals": {"process": "poisson", "rate": 0.9},
            "tasks": [{"type": "t0", "work": {"dist": "constant", "value": 0.5}, "locks": ["r0"]}],
        },
        "network": {"loss": 0.1},
    },
}


@given(cfg=contended_scenarios(), seed=st.integers(0, 2**16))
@example(cfg=_RESTART_REASSIGN, seed=0)
@example(cfg=_AT_ONCE, seed=1)
@example(cfg=_COPIED, seed=0)
@example(cfg=_WRITING, seed=1)
def test_a_random_arbiter_on_lock_contention_loses_no_task(cfg: dict[str, Any], seed: int) -> None:
    """Whatever the arbiter decides on contended locks (and failures), each arrival ends
    once, is dropped or is still live; no stale write is accepted."""
    spec = RunSpec.make(cfg, "p", (), seed, trace=True)
    with guarded_engine(), exclusive_leases():
        world, cols = simulate_world(spec)
    assert cols["id"].tolist() == list(range(world.arrived)), "each arrival appears exactly once"
    assert world.kernel.log is not None and world.arbitration is not None
    rows = world.kernel.log.rows
    assert len([r for r in rows if r[1] == "arbitrate"]) == len(world.arbitration.records)
    state = cols["state"]
    ended = set(cols["id"][(state == DONE) | (state == ABANDONED)].tolist())
    withdrawn = {r[2] for r in rows if r[1] == "abandon" and "withdrawn" in r[6]}
    copied = set(world.ledger.families)  # a copy's abort ends the task if it was the last
    assert withdrawn - ended <= copied, "a task aborted on a contended lock is still live"
    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("lost", "all")] == 0
    assert m[("safety_violations", "all")] == 0
    done = sum(m[(k, "all")] for k in ("completed", "abandoned", "rejected", "dropped"))
    assert done + m[("in_flight", "all")] == m[("arrived", "all")]
    assert m[("lock_waiting", "all")] >= 0


# Found by the test above after main's owner_unreachable merged: task 18, handed back
# (``returned``) by a withdrawal while the coordinator sends a copy of it
# (owner_unreachable), is dropped by a partition twice, original and copy; the scenario
# actor's ``held`` (kossim/sim/timeline.py) skips each dropped member because the other
# lives on, so the task is counted nowhere. Skipping only for a live member that is not
# itself dropped counts it once (checked by patching); that file is another helper's.
_DROPPED_TWICE: dict[str, Any] = {
    "name": "conservation",
    "tasks": 30,
    "scenario": {
        "agents": [
            {"group": "g0", "count": 2, "capacity": 2, "speed": 0.5},
            {
                "group": "g1",
                "count": 3,
                "capacity": 3,
                "speed": 0.5,
                "skills": {"a": 0.5},
                "pause": {
                    "every": {"dist": "exponential", "mean": 8.0},
                    "length": {"dist": "constant", "value": 4.0},
                },
            },
            {"group": "g2", "count": 1, "capacity": 2, "speed": 1.0, "skills": {"a": 0.5}},
        ],
        "workload": {
            "arrivals": {"process": "poisson", "rate": 14.733333333333334},
            "tasks": [
                {
                    "type": "t0",
                    "share": 2.0,
                    "work": {"dist": "exponential", "mean": 0.5},
                    "locks": ["r0"],
                },
                {"type": "t1", "work": {"dist": "exponential", "mean": 1.0}},
                {
                    "type": "t2",
                    "work": {"dist": "exponential", "mean": 1.0},
                    "deadline": {"dist": "constant", "value": 1.0},
                },
            ],
        },
        "network": {
            "latency": {"dist": "exponential", "mean": 0.2},
            "partitions": [
                {
                    "up": {"dist": "exponential", "mean": 3.0},
                    "down": {"dist": "exponential", "mean": 4.0},
                    "groups": [["g0"]],
                }
            ],
        },
        "failures": {
            "agents": {
                "up": {"dist": "constant", "value": 10.0},
                "down": {"dist": "exponential", "mean": 0.5},
                "on_failure": "resume",
                "detect": {"dist": "exponential", "mean": 0.3},
                "max_attempts": 1,
            }
        },
        "resources": [{"name": "r0"}],
    },
    "policies": [
        {
            "name": "p",
            "dispatch": "push",
            "routing": "random",
            "agent": {"id": "locking", "answer_timeout": 0.5},
            "locks": {
                "id": "lease",
                "duration": 4.0,
                "renew_every": 2.0,
                "contended_after": 0.5,
            },
            "arbiter": {"id": "tests.property.random_arbiter:Coin", "risk_slack": None},
        }
    ],
}


def test_a_task_dropped_with_its_copy_is_counted_once() -> None:
    """A task whose live copies are all dropped on the wire is counted once (each dropped
    member used to defer to the other: counted nowhere)."""
    world, cols = simulate_world(RunSpec.make(_DROPPED_TWICE, "p", (), 730))
    assert cols["id"].tolist() == list(range(world.arrived)), "task 18 is counted nowhere"

"""Role eligibility on random small scenarios (Hypothesis).

Whatever the fleet, roles, fallbacks, failures and routing, no task ever
starts on an agent that lacks its type's skills, or lacks its required role
unless that role's configured fallback names a role the agent holds; and
every arrival is accounted for (``lost`` is 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world

ROLES = ("r0", "r1", "r2")
SKILLS = ("a", "b")
ROUTING = ("random", "jsq", "least_work", "role_based", {"id": "role_based", "affinity": 1.0})


@st.composite
def role_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    roles: dict[str, Any] = {}
    for k, r in enumerate(ROLES):
        spec: dict[str, Any] = {"skills": draw(st.lists(st.sampled_from(SKILLS), unique=True))}
        if draw(st.integers(0, 3)):  # mostly a fallback: the next role, or the one after
            spec["fallback"] = {
                "role": ROLES[(k + draw(st.integers(1, 2))) % len(ROLES)],
                "penalty": draw(st.sampled_from([0.25, 0.5, 1.0])),
            }
        roles[r] = spec
    groups = []
    for g in range(draw(st.integers(2, 3))):
        group: dict[str, Any] = {
            "group": f"g{g}",
            "count": draw(st.integers(1, 2)),
            "capacity": draw(st.integers(1, 2)),
            "speed": draw(st.sampled_from([0.5, 1.0, 2.0])),
            "roles": draw(st.lists(st.sampled_from(ROLES), unique=True, min_size=1, max_size=2)),
            "skills": {s: 1.0 for s in draw(st.lists(st.sampled_from(SKILLS), unique=True))},
            "node": draw(st.sampled_from(["n0", "n1"])),
        }
        if draw(st.booleans()):
            group["learning"] = {"cap": 2.0, "tau": draw(st.sampled_from([1.0, 5.0]))}
        groups.append(group)
    tasks = []
    for i in range(draw(st.integers(1, 3))):
        # a type some group can serve: its role (or none) and skills that group has
        g = draw(st.sampled_from(groups))
        have = sorted(set(g["skills"]) | {s for r in g["roles"] for s in roles[r]["skills"]})
        task: dict[str, Any] = {
            "type": f"t{i}",
            "work": {"dist": "exponential", "mean": draw(st.sampled_from([0.5, 1.0]))},
            "skills": draw(st.lists(st.sampled_from(have), unique=True)) if have else [],
        }
        if draw(st.integers(0, 3)):
            role = task["role"] = draw(st.sampled_from(g["roles"]))
            fb = roles[role].get("fallback")
            other = groups[(groups.index(g) + 1) % len(groups)]
            if fb and fb["role"] not in other["roles"] and draw(st.booleans()):
                other["roles"].append(fb["role"])  # some group may stand in
        if draw(st.booleans()):
            task["data"] = {"node": draw(st.sampled_from(["n0", "n1"])), "size": 1.0}
        if draw(st.booleans()):
            task["affinity"] = [draw(st.sampled_from([x["group"] for x in groups] + ["n0"]))]
        tasks.append(task)
    capacity = sum(x["count"] * x["capacity"] * x["speed"] for x in groups)
    scenario: dict[str, Any] = {
        "roles": roles,
        "agents": groups,
        "nodes": [{"name": "n0"}, {"name": "n1"}],
        "network": {
            "latency": draw(
                st.sampled_from(
                    [{"dist": "constant", "value": 0.0}, {"dist": "exponential", "mean": 0.05}]
                )
            ),
            "bandwidth": 4.0,
        },
        "workload": {
            "arrivals": {
                "process": "poisson",
                "rate": capacity * draw(st.sampled_from([0.5, 1.2])),
            },
            "tasks": tasks,
        },
    }
    if draw(st.booleans()):
        scenario["failures"] = {
            "agents": {
                "up": {"dist": "exponential", "mean": 10.0},
                "down": {"dist": "exponential", "mean": 1.0},
                "on_failure": draw(st.sampled_from(["resume", "restart", "requeue"])),
            }
        }
    policy = {
        "name": "p",
        "dispatch": draw(st.sampled_from(["central", "push"])),
        "routing": draw(st.sampled_from(ROUTING)),
    }
    return {
        "name": "roles_prop",
        "seeds": 1,
        "horizon": 40.0,
        "scenario": scenario,
        "policies": [policy],
    }


def _allowed(config: dict[str, Any]) -> dict[tuple[str, str], bool]:
    """(agent group, task type) -> whether the type may run there."""
    sc = config["scenario"]
    roles = sc["roles"]
    out = {}
    for g in sc["agents"]:
        have = set(g["skills"]) | {s for r in g["roles"] for s in roles[r]["skills"]}
        for t in sc["workload"]["tasks"]:
            ok = set(t["skills"]) <= have
            role = t.get("role")
            if role is not None and role not in g["roles"]:
                fb = roles[role].get("fallback")
                ok = ok and fb is not None and fb["role"] in g["roles"]
            out[(g["group"], t["type"])] = ok
    return out


@given(role_scenarios(), st.integers(0, 2**16))
def test_tasks_run_only_where_role_and_skills_allow(config: dict[str, Any], seed: int) -> None:
    spec = RunSpec(run_id="r", policy="p", point={}, seed=seed, config=config, trace=True)
    world, cols = simulate_world(spec)
    allowed = _allowed(config)
    group_of = {a.name: a.profile.group for a in world.agents}
    log = world.kernel.log.columns()
    names = [t.name for t in world.task_types]
    task_type = {int(i): names[int(t)] for i, t in zip(cols["id"], cols["tidx"], strict=True)}
    starts = np.flatnonzero(log["kind"] == "start")
    for i in starts:
        agent, task = str(log["actor"][i]), int(log["task"][i])
        assert allowed[(group_of[agent], task_type[task])], (agent, task, task_type[task])
    result = simulate(RunSpec(run_id="r", policy="p", point={}, seed=seed, config=config))
    assert result.status == "ok", result.error
    lost = [v for m, s, v in result.metrics if m == "lost" and s == "all"]
    assert lost == [0.0]

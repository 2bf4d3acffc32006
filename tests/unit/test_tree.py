"""Delegation trees: their shape, one decision per level, decision work, failures and fallbacks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.task import DONE
from policies.tree import TreeParams
from policies.tree_shape import explicit_shape, generated_shape

AGENTS = [f"w-{i}" for i in range(16)]


def _config(
    coordinator: dict[str, Any], count: int = 8, rate: float = 4.0, **top: Any
) -> dict[str, Any]:
    return {
        "name": "tree",
        "horizon": 200.0,
        "warmup": 10.0,
        "scenario": {
            "agents": [{"group": "w", "count": count}],
            "network": {"latency": {"dist": "constant", "value": 0.01}},
            "workload": {
                "arrivals": {"process": "poisson", "rate": rate},
                "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
            },
        },
        "policies": [{"name": "p", "coordinator": {"id": "tree", **coordinator}}],
        **top,
    }


def _metrics(cfg: dict[str, Any], seed: int = 1) -> dict[tuple[str, str], float]:
    result = simulate(RunSpec.make(cfg, "p", (), seed))
    assert result.status == "ok", result.error
    return {(m, s): v for m, s, v in result.metrics}


# -- shapes -----------------------------------------------------------------------------


def test_a_generated_tree_has_branching_children_and_logarithmic_depth() -> None:
    """16 agents, branching 4: the root over 4 managers over 4 agents each; 64: depth 3."""
    shape = generated_shape(AGENTS, 4)
    assert shape.children["coordinator"] == ["m1-0", "m1-1", "m1-2", "m1-3"]
    assert shape.children["m1-1"] == ["w-4", "w-5", "w-6", "w-7"]
    assert shape.depth == 2
    assert generated_shape([f"w-{i}" for i in range(64)], 4).depth == 3
    assert shape.agents_under("coordinator") == AGENTS
    flat = generated_shape(AGENTS, None)
    assert flat.children == {"coordinator": AGENTS} and flat.depth == 1


def test_an_explicit_hierarchy_is_checked() -> None:
    """Every agent under exactly one manager, names known, the root named coordinator."""
    shape = explicit_shape({"coordinator": ["a", "w-3"], "a": ["w-0", "w-1", "w-2"]}, AGENTS[:4])
    assert shape.depth == 2 and shape.level == {"coordinator": 0, "a": 1}
    with pytest.raises(ValueError, match="sits under both"):
        explicit_shape({"coordinator": ["w-0", "a"], "a": ["w-0", "w-1"]}, AGENTS[:2])
    with pytest.raises(ValueError, match="neither an agent nor a manager"):
        explicit_shape({"coordinator": ["w-0", "x"]}, AGENTS[:1])
    with pytest.raises(ValueError, match="under no manager"):
        explicit_shape({"coordinator": ["w-0"]}, AGENTS[:2])
    with pytest.raises(ValidationError, match="branching or hierarchy"):
        TreeParams(branching=2, hierarchy={"coordinator": ["w-0"]})
    with pytest.raises(ValidationError, match="root manager must be named"):
        TreeParams(hierarchy={"top": ["w-0"]})


# -- delegation ----------------------------------------------------------------------------


def test_every_task_is_decided_once_per_level_with_the_view_as_reason() -> None:
    """8 agents, branching 2: depth 3, so each task makes 3 hops; the log says why."""
    cfg = _config({"branching": 2, "decision_time": 0.002})
    result = simulate(RunSpec.make(cfg, "p", (), 3, trace=True))
    assert result.status == "ok", result.error
    m = {(k, s): v for k, s, v in result.metrics}
    assert m[("hops_mean", "all")] == 3.0 and m[("hops_share", "hops=3")] == 1.0
    assert m[("tree_depth", "all")] == 3.0
    assert result.events is not None and result.tasks is not None
    events = result.events
    rows = [
        (events["actor"][i], events["reason"][i], json.loads(events["fields"][i]))
        for i in range(len(events["kind"]))
        if events["kind"][i] == "delegate" and events["task"][i] == 5
    ]
    assert [f["level"] for _, _, f in rows] == [0, 1, 2]
    assert next(who for who, _, _ in rows) == "coordinator"
    assert all("least (load+1)/rate of [" in reason for _, reason, _ in rows)
    task = int(next(i for i, t in enumerate(result.tasks["task"]) if t == 5))
    assert rows[-1][2]["to"] == result.tasks["agent"][task]


def test_decision_work_is_charged_per_child_scanned() -> None:
    """A manager's busy time is its decisions times (decision_time + scan_time x children):
    the flat manager scans 16 agents, the tree's root 4 managers."""
    work = {"decision_time": 0.01, "scan_time": 0.002}
    flat = _metrics(_config({"branching": None, **work}, count=16, rate=8.0))
    tree = _metrics(_config({"branching": 4, **work}, count=16, rate=8.0))
    for m, children in ((flat, 16), (tree, 4)):
        per_decision = 0.01 + 0.002 * children
        busy = m[("manager_decisions", "manager=coordinator")] * per_decision
        assert m[("manager_utilization", "manager=coordinator")] == pytest.approx(busy, rel=0.02)
    assert flat[("manager_utilization", "all")] > 2 * tree[("manager_utilization", "all")]
    # The root sees every task; a lowest manager about a quarter of them.
    root = tree[("manager_decisions", "manager=coordinator")]
    assert tree[("manager_decisions", "manager=m1-0")] == pytest.approx(root / 4, rel=0.35)


def test_skills_route_tasks_only_into_subtrees_that_can_serve_them() -> None:
    """A gpu task goes down the only subtree with a gpu agent."""
    cfg = _config({"branching": 2})
    cfg["scenario"]["agents"] = [
        {"group": "cpu", "count": 3, "skills": {"cpu": 1.0}},
        {"group": "gpu", "count": 1, "skills": {"cpu": 1.0, "gpu": 1.0}},
    ]
    cfg["scenario"]["workload"]["tasks"] = [
        {
            "type": "plain",
            "share": 3,
            "work": {"dist": "exponential", "mean": 0.5},
            "skills": ["cpu"],
        },
        {"type": "special", "work": {"dist": "exponential", "mean": 0.5}, "skills": ["gpu"]},
    ]
    cfg["scenario"]["workload"]["arrivals"]["rate"] = 2.0
    _world, cols = simulate_world(RunSpec.make(cfg, "p", (), 2))
    special = (cols["tidx"] == 1) & (cols["state"] == DONE)
    assert special.sum() > 10
    assert set(cols["agent"][special].tolist()) == {3}


# -- failures ---------------------------------------------------------------------------------


def test_a_failed_manager_s_tasks_are_rerouted_and_its_subtree_adopted() -> None:
    """Managers fail often and decide slowly: tasks in their hands come back to the parent
    (``rerouted``), which adopts the failed manager's children until it is back; nothing is
    lost and no task makes more hops than the tree is deep."""
    failures = {
        "up": {"dist": "exponential", "mean": 10.0},
        "down": {"dist": "exponential", "mean": 3.0},
    }
    cfg = _config({"branching": 2, "decision_time": 0.05, "manager_failures": failures})
    result = simulate(RunSpec.make(cfg, "p", (), 4, trace=True))
    assert result.status == "ok", result.error
    m = {(k, s): v for k, s, v in result.metrics}
    assert m[("lost", "all")] == 0
    assert m[("rerouted", "all")] > 0
    assert result.tasks is not None and result.tasks["hops"].max() <= 3
    assert result.events is not None
    kinds = set(result.events["kind"].tolist())
    assert {"crash", "repair", "suspect", "fallback", "release", "reroute", "restore"} <= kinds
    # While a manager is taken over its parent delegates straight to its children.
    events = result.events
    fallback = next(i for i, k in enumerate(events["kind"]) if k == "fallback")
    parent = events["actor"][fallback]
    adopted = events["reason"][fallback].split("adopts ")[1].split(", ")
    later = [
        json.loads(events["fields"][i])["to"]
        for i in range(fallback, len(events["kind"]))
        if events["kind"][i] == "delegate" and events["actor"][i] == parent
    ]
    assert set(adopted) & set(later)


def test_the_root_never_fails_and_flat_dispatch_reroutes_nothing() -> None:
    """Manager failures spare the root (the coordinator): a flat tree has no other manager."""
    failures = {
        "up": {"dist": "constant", "value": 1.0},
        "down": {"dist": "constant", "value": 1.0},
    }
    m = _metrics(_config({"branching": None, "manager_failures": failures}))
    assert m[("rerouted", "all")] == 0 and m[("lost", "all")] == 0
    assert m[("hops_mean", "all")] == 1.0


def test_an_explicit_hierarchy_runs_unbalanced() -> None:
    """A manager over three agents beside an agent straight under the root: tasks placed
    on that agent make one hop, the others two."""
    hierarchy = {"coordinator": ["a", "w-3"], "a": ["w-0", "w-1", "w-2"]}
    cfg = _config({"hierarchy": hierarchy}, count=4, rate=2.0)
    _, cols = simulate_world(RunSpec.make(cfg, "p", (), 5))
    done = cols["state"] == DONE
    hops = {int(a): set(cols["hops"][done & (cols["agent"] == a)].tolist()) for a in range(4)}
    assert hops == {0: {2}, 1: {2}, 2: {2}, 3: {1}}
    bad = _config({"hierarchy": {"coordinator": ["w-0", "w-9"]}}, count=2)
    result = simulate(RunSpec.make(bad, "p", (), 5))
    assert result.status == "failed" and "'w-9', neither an agent nor a manager" in (
        result.error or ""
    )


def test_as_the_fleet_grows_the_tree_bounds_manager_work_and_flat_dispatch_does_not() -> None:
    """At 70 % utilisation, 16 then 64 agents: flat dispatch's one manager scans 4 times
    the agents at 4 times the rate (16 times the work); the tree's busiest manager
    does about 4 times the work, and its lowest managers decide at the same rate."""
    work = {"decision_time": 0.0005, "scan_time": 0.00003}
    busiest: dict[tuple[str, int], float] = {}
    lowest: dict[int, float] = {}
    for n, leaf in ((16, "m1-0"), (64, "m2-0")):
        for branching in (None, 4):
            cfg = _config({"branching": branching, **work}, count=n, rate=0.7 * n)
            cfg["horizon"], cfg["warmup"] = 60.0, 5.0
            m = _metrics(cfg)
            busiest[("flat" if branching is None else "tree", n)] = m[
                ("manager_utilization", "all")
            ]
            if branching is not None:
                lowest[n] = m[("manager_decisions", f"manager={leaf}")]
    # Decisions are Poisson counts over 55 time units: the root's (about 600 and 2,500)
    # vary by 4 % and 2 %, a lowest manager's (about 150) by 8 %; the tolerances are
    # 3 standard deviations of the ratios.
    flat_growth = busiest[("flat", 64)] / busiest[("flat", 16)]
    tree_growth = busiest[("tree", 64)] / busiest[("tree", 16)]
    assert flat_growth == pytest.approx(
        4 * (0.0005 + 64 * 0.00003) / (0.0005 + 16 * 0.00003), rel=0.15
    )
    assert tree_growth == pytest.approx(4.0, rel=0.15)
    assert lowest[64] == pytest.approx(lowest[16], rel=0.35)

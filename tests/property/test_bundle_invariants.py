"""Bundles on random small scenarios (Hypothesis): conservation, and gangs start whole.

The scenarios of :mod:`tests.property.test_conservation` (assorted fleets,
skills, loads up to overload, latency, failures under every semantics) with
their task types turned into bundles of random size and mode, under the
``bundles`` coordinator (either assembly) or, without gangs, the plain one:
every bundle is accounted for exactly once, no subtask starts on a down
agent, twice or beyond capacity, and a run is a pure function of its seed.
On an instant network without failures, the k subtasks of every gang start
at one instant on k distinct agents.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.agent import Agent
from kossim.sim.task import ABANDONED, DONE, Task
from tests.property.test_conservation import _same_rows, guarded_engine, scenarios


def _able(cfg: dict[str, Any], skills: list[str]) -> int:
    return sum(
        g["count"]
        for g in cfg["scenario"]["agents"]
        if all(g["skills"].get(s, 0) > 0 for s in skills)
    )


@st.composite
def bundle_scenarios(draw: st.DrawFn, calm: bool = False) -> dict[str, Any]:
    """A conservation scenario whose types may be bundles (at least one is).

    ``calm``: an instant network and no failures (views are then the truth)."""
    cfg = draw(scenarios())
    if calm:
        cfg["scenario"].pop("failures", None)
        cfg["scenario"].pop("network", None)
    gangs = False
    for i, t in enumerate(cfg["scenario"]["workload"]["tasks"]):
        if i and not draw(st.booleans()):
            continue
        able = _able(cfg, t["skills"])
        modes = ["independent", "quorum"] + (["gang"] if able >= 2 else [])
        mode = draw(st.sampled_from(modes))
        k = draw(st.integers(2, min(able, 4) if mode == "gang" else 4))
        bundle: dict[str, Any] = {"k": k, "mode": mode}
        if mode == "quorum":
            bundle["m"] = draw(st.integers(1, k))
        gangs = gangs or mode == "gang"
        t["bundle"] = bundle
    policy = cfg["policies"][0]
    if gangs or draw(st.booleans()):
        policy["coordinator"] = {
            "id": "bundles",
            "assembly": draw(st.sampled_from(["reserve", "wait"])),
        }
    return cfg


@given(cfg=bundle_scenarios(), seed=st.integers(0, 2**16))
def test_every_bundle_is_accounted_for(cfg: dict[str, Any], seed: int) -> None:
    """Each bundle ends once (completed or abandoned) or is still live; none is lost."""
    spec = RunSpec.make(cfg, "p", (), seed)
    with guarded_engine():
        world, cols = simulate_world(spec)
    assert cols["id"].tolist() == list(range(world.arrived)), "each bundle appears exactly once"
    state = cols["state"]
    live = ~((state == DONE) | (state == ABANDONED))
    assert world.in_system == int(live.sum())
    assert (cols["end"][live] == -1).all()
    done = state == DONE
    assert (cols["start"][done] >= cols["arrival"][done]).all()
    assert (cols["end"][done] >= cols["start"][done]).all()
    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("lost", "all")] == 0
    assert m[("cancelled_subtasks", "all")] <= m[("subtasks", "all")]
    assert m[("reservation_idle", "all")] >= 0
    assert _same_rows(result.metrics, simulate(spec).metrics), "same seed, different metrics"


@given(cfg=bundle_scenarios(calm=True), seed=st.integers(0, 2**16))
def test_gangs_never_start_partially(cfg: dict[str, Any], seed: int) -> None:
    """Every gang's k subtasks first start at one instant, on k distinct agents; an
    independent or quorum bundle's parts each start at most once."""
    gang_k = {
        t["type"]: t["bundle"]["k"]
        for t in cfg["scenario"]["workload"]["tasks"]
        if t.get("bundle", {}).get("mode") == "gang"
    }
    starts: dict[int, list[tuple[int, float, str]]] = defaultdict(list)
    start = Agent.start

    def recorded(agent: Agent, task: Task) -> None:
        if task.type in gang_k and task.start < 0:
            starts[task.id].append((task.part, agent.world.env._now, agent.name))
        start(agent, task)

    spec = RunSpec.make(cfg, "p", (), seed)
    with mock.patch.object(Agent, "start", recorded):
        world, cols = simulate_world(spec)
    for bundle, firsts in starts.items():
        k = gang_k[world.task_types[int(cols["tidx"][bundle])].name]
        parts = sorted(p for p, _, _ in firsts)
        assert parts == list(range(k)), f"gang {bundle} started parts {parts} of {k}"
        assert len({t for _, t, _ in firsts}) == 1, f"gang {bundle} started apart: {firsts}"
        assert len({a for _, _, a in firsts}) == k, f"gang {bundle} shares an agent: {firsts}"

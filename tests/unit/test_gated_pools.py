"""Decisions without a scan of the fleet: role_based's classes, the pools of agents with room
under their ``queue_limit`` and the trust-gated pools answer exactly what a scan would."""

from __future__ import annotations

from typing import Any

import pytest

import kossim.sim.pool as pool_module
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.pool import Pool
from policies.role_based import RoleBased
from policies.trust import PROBATION, TRUSTED, TrustGated


def _fleet(
    limit: int | None = None, learning: bool = True, trust: bool = False, count: int = 12
) -> dict[str, Any]:
    fast: dict[str, Any] = {"group": "fast", "count": count // 3, "speed": 2.0, "roles": ["w"]}
    slow: dict[str, Any] = {"group": "slow", "count": count - count // 3, "roles": ["w"]}
    if learning:
        fast["learning"] = {"cap": 1.5, "tau": 4.0}
        slow["learning"] = {"cap": 2.0, "tau": 2.0}
    if limit is not None:
        fast["queue_limit"] = slow["queue_limit"] = limit
    if trust:
        slow["trust"] = 0.75
        slow["bad_results"] = 0.2
    work = {"dist": "constant", "value": 1.0}  # equal loads: ties across agents and classes
    return {
        "roles": {"w": {"skills": ["do"]}},
        "agents": [fast, slow],
        "workload": {
            "arrivals": {"process": "poisson", "rate": 0.9 * (2 * (count // 3) + count)},
            "tasks": [
                {"type": "x", "share": 0.5, "role": "w", "work": work, "affinity": ["slow"]},
                {"type": "y", "share": 0.5, "role": "w", "work": work, "criticality": "low"},
            ],
        },
        "failures": {
            "agents": {
                "up": {"dist": "exponential", "mean": 30},
                "down": {"dist": "exponential", "mean": 3},
                "on_failure": "resume",
            }
        },
    }


def _spec(scenario: dict[str, Any], policy: dict[str, Any], tasks: int = 1200) -> RunSpec:
    config = {
        "name": "gated",
        "seeds": 1,
        "tasks": tasks,
        "scenario": scenario,
        "policies": [{"name": "p", "dispatch": "push", **policy}],
    }
    return RunSpec(run_id="t", policy="p", point=(), seed=0, config=config, trace=True)


ROLE_BASED = [
    {"id": "role_based"},
    {"id": "role_based", "affinity": 0.3, "load": 2.0},
    {"id": "role_based", "history": False, "proficiency": 0.0},
]


@pytest.mark.parametrize("routing", ROLE_BASED, ids=["default", "affinity", "load-only"])
@pytest.mark.parametrize("dispatch", ["push", "central"])
def test_role_based_by_classes_chooses_as_its_scan(
    routing: dict[str, Any], dispatch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Indexed (every fleet size indexed) and scanned (no fleet indexed), the same run:
    every figure and every logged reason, through learning, failures and ties."""
    spec = _spec(_fleet(), {"routing": routing, "dispatch": dispatch})
    runs = []
    indexed = []
    original = RoleBased._indexed

    def counting(self: RoleBased, *args: Any) -> Any:
        indexed.append(1)
        return original(self, *args)

    monkeypatch.setattr(RoleBased, "_indexed", counting)
    for threshold in (0, 10**9):
        monkeypatch.setattr(pool_module, "INDEX_FROM", threshold)
        result = simulate(spec)
        assert result.status == "ok", result.error
        assert result.events is not None
        runs.append((result.metrics, list(result.events["reason"])))
    assert repr(runs[0]) == repr(runs[1])  # repr: NaN metrics compare equal
    assert len(indexed) > 1000  # the indexed path decided (once per task, run indexed)


def test_a_learning_agent_changes_class_as_reports_come_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "INDEX_FROM", 0)
    world, _ = simulate_world(_spec(_fleet(count=6), {"routing": "role_based"}, tasks=300))
    router = world.coordinator.router
    pools = [p for by_id in router._parted.values() for p in by_id.values()]
    assert pools
    for pool in pools:
        for tidx, part in pool._parts.items():
            assert part is not None
            for v in pool:  # each member sits in the class its current experience gives
                assert part.of[v.index] == router._keys[tidx](v)
            assert sum(len(b) for ix in part.classes.values() for b in ix.buckets.values()) == len(
                pool
            )


def _checking_candidates(monkeypatch: pytest.MonkeyPatch, want: Any) -> list[int]:
    """Make jsq check, at every decision, its candidates against ``want(coord, task)``."""
    from policies.routing import Jsq

    seen: list[int] = []
    original = Jsq.select

    def checking(self: Jsq, task: Any, candidates: Any, now: float) -> Any:
        assert isinstance(candidates, Pool)
        expected = want(candidates, task)
        assert [v.index for v in candidates] == expected
        seen.append(len(expected))
        return original(self, task, candidates, now)

    monkeypatch.setattr(Jsq, "select", checking)
    return seen


def test_push_candidates_under_queue_limits_are_the_agents_with_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def room(pool: Pool, task: Any) -> list[int]:
        return [
            v.index
            for v in pool.views
            if v.up and v.proficiency(task.skills) > 0 and v.queue_length < v.limit
        ]

    seen = _checking_candidates(monkeypatch, room)
    result = simulate(_spec(_fleet(limit=2, learning=False), {"routing": "jsq"}))
    assert result.status == "ok", result.error
    assert len(seen) > 800 and min(seen) >= 1  # every decision but the rejections
    assert dict(((m, s), v) for m, s, v in result.metrics)[("rejected", "all")] > 0


@pytest.mark.parametrize("mode", ["shadow", "low_criticality"])
@pytest.mark.parametrize("dispatch", ["push", "central"])
def test_trust_gated_candidates_are_the_agents_of_the_allowed_standing(
    mode: str, dispatch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    coords: list[TrustGated] = []
    original = TrustGated.on_start

    def keep(self: TrustGated, ctx: Any) -> None:
        coords.append(self)
        original(self, ctx)

    monkeypatch.setattr(TrustGated, "on_start", keep)
    shadowing: list[bool] = [False]
    launch = TrustGated._launch_shadow

    def flagged(self: TrustGated, task: Any, primary: Any) -> None:
        shadowing[0] = True
        launch(self, task, primary)
        shadowing[0] = False

    monkeypatch.setattr(TrustGated, "_launch_shadow", flagged)

    def allowed(pool: Pool, task: Any) -> list[int]:
        coord = coords[-1]
        pull = dispatch == "central"
        if shadowing[0]:  # a shadow's: agents on probation with a free slot
            ok, free = (PROBATION,), True
        else:
            ok = (TRUSTED, PROBATION) if coord.low_ok[task.tidx] else (TRUSTED,)
            free = pull
        return [
            v.index
            for v in pool.views
            if v.up
            and v.proficiency(task.skills) > 0
            and (not free or v.queue_length < v.capacity)
            and coord.status[v.index] in ok
        ]

    seen = _checking_candidates(monkeypatch, allowed)
    policy = {
        "routing": "jsq",
        "dispatch": dispatch,
        "coordinator": {"id": "trust_gated", "mode": mode, "verify": 0.3, "promote": 0.85},
    }
    result = simulate(_spec(_fleet(learning=False, trust=True), policy))
    assert result.status == "ok", result.error
    assert len(seen) > 1000
    metrics = {(m, s): v for m, s, v in result.metrics}
    assert metrics[("promoted", "all")] + metrics[("quarantined", "all")] > 0

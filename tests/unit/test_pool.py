"""Indexed candidates (kossim.sim.pool): every query answers what a scan would, in the
same index order, through any sequence of load changes, failures and recoveries; the
routers choose the same agent with the same draw from a Pool as from a plain list."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from kossim.config.models import Network
from kossim.sim.agent import AgentState
from kossim.sim.network import Net
from kossim.sim.pool import IndexedState, Pool, ValueIndex
from policies.routing import Fastest, Jsq, LeastWork, PowerOfD, Random, RoundRobin


def _views(n: int, speeds: tuple[float, ...] = (1.0, 2.0)) -> list[AgentState]:
    return [
        IndexedState(i, f"a{i}", "g", speeds[i % len(speeds)], 2, {"s": 1.0}, 1.0) for i in range(n)
    ]


def _scan_least(members: list[AgentState], attr: str, work: float) -> list[int]:
    def score(v: AgentState) -> float:
        return (
            getattr(v, attr) + work / (v.speed * v.proficiency(("s",)))
            if work
            else getattr(v, attr)
        )

    best = min(score(v) for v in members)
    return [v.index for v in members if score(v) == best]


@pytest.mark.parametrize("seed", range(6))
def test_pool_queries_match_a_scan_through_random_changes(seed: int) -> None:
    rng = random.Random(seed)
    views = _views(40)
    pool = Pool(views, views, ("s",), ("queue_length", "work_outstanding", "rate"))
    up = set(range(40))
    for _ in range(600):
        v = views[rng.randrange(40)]
        r = rng.random()
        if r < 0.1:  # a failure or a recovery
            if v.index in up:
                pool.leave(v)
                up.discard(v.index)
            else:
                pool.enter(v)
                up.add(v.index)
        elif r < 0.55:
            v.queue_length += 1
            v.work_outstanding += rng.choice((0.5, 1.0, rng.random()))
        elif v.queue_length:
            v.queue_length -= 1
            v.work_outstanding = v.work_outstanding - 0.5 if v.queue_length else 0.0
        members = [w for w in views if w.index in up]
        assert [w.index for w in pool] == [w.index for w in members]
        if not members:
            continue
        assert [w.index for w in pool.least("queue_length")] == _scan_least(
            members, "queue_length", 0.0
        )
        for work in (0.5, 1.0, 2.0):
            got = [w.index for w in pool.least("work_outstanding", work)]
            assert got == _scan_least(members, "work_outstanding", work)
        top = max(w.speed for w in members)
        assert [w.index for w in pool.fastest()] == [w.index for w in members if w.speed == top]
        nxt = rng.randrange(45)
        after = pool.after(nxt)
        want = next((w for w in members if w.index >= nxt), None)
        assert after is want


def test_pool_without_indexes_answers_by_a_scan() -> None:
    views = [AgentState(i, f"a{i}", "g", 1.0, 1, {}, 1.0) for i in range(5)]
    for v, q in zip(views, (2, 0, 1, 0, 3), strict=True):
        v.queue_length = q
    pool = Pool(views, views, ())
    assert [v.index for v in pool.least("queue_length")] == [1, 3]
    assert [v.index for v in pool.fastest()] == [0, 1, 2, 3, 4]


def test_value_index_drops_stale_values_and_keeps_the_minimum() -> None:
    ix = ValueIndex()
    for i in range(100):
        ix.add(i, float(i))
    for i in range(99):
        ix.move(i, float(i), 1000.0 + i)
    assert ix.minimum() == 99.0
    assert len(ix.heap) <= 2 * len(ix.buckets) + 33


@pytest.mark.parametrize(
    "router", [Random, RoundRobin, Jsq, LeastWork, Fastest, PowerOfD], ids=lambda r: r.id
)
def test_routers_choose_alike_from_a_pool_and_from_a_list(router: type) -> None:
    """The indexed path and the scan choose the same agents with the same draws."""
    views = _views(30)
    pool = Pool(views, views[3:], ("s",), getattr(router, "indexes", ()))
    rng = random.Random(1)

    class T:
        skills = ("s",)
        work = 1.0

    params = router.Params()
    a = router(params, np.random.default_rng(5))
    b = router(params, np.random.default_rng(5))
    for _ in range(300):
        x = a.select(T, pool, 0.0)
        y = b.select(T, list(pool), 0.0)
        assert x is y
        x.queue_length += 1
        x.work_outstanding += rng.choice((0.25, 1.0))
        w = views[rng.randrange(3, 30)]
        if w.queue_length and rng.random() < 0.6:
            w.queue_length -= 1
            w.work_outstanding = w.work_outstanding - 0.25 if w.queue_length else 0.0


def test_network_constant_paths_draw_nothing_and_random_links_draw_as_before() -> None:
    from kossim.dists import sampler
    from kossim.sim.streams import stream

    const = Net(
        Network.model_validate({"latency": {"dist": "constant", "value": 0.05}}), ["n1", "n2"], 3
    )
    assert const.delay("coordinator", "n1") == 0.05
    assert const.delay("n1", "n2") == 0.05 + 0.05
    assert const._links[("coordinator", "n1")] == 0.05  # no sampler, no stream
    spec = Network.model_validate({"latency": {"dist": "exponential", "mean": 0.05}})
    net = Net(spec, ["n1"], 3)
    got = [net.delay("coordinator", "n1") for _ in range(3000)]
    ref = sampler(spec.latency, stream(3, "net:coordinator>n1"))
    assert got == [0 + ref() for _ in range(3000)]


@pytest.mark.parametrize("dispatch", ["central", "push"])
def test_coordinator_pools_hold_exactly_the_agents_a_scan_finds(
    dispatch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two skill sets (pull keeps a pool of free slots per skill set), failures: at every
    decision the candidates are the skilled agents up (with a free slot, under pull)."""
    from kossim.runspec import RunSpec
    from kossim.sim import simulate_world

    seen = []
    original = Random.select

    def checking(self: Random, task: Any, candidates: Any, now: float) -> Any:
        assert isinstance(candidates, Pool)
        pull = dispatch == "central"
        want = [
            v.index
            for v in candidates.views
            if v.up and v.proficiency(task.skills) > 0 and (not pull or v.queue_length < v.capacity)
        ]
        assert [v.index for v in candidates] == want
        seen.append(len(want))
        return original(self, task, candidates, now)

    monkeypatch.setattr(Random, "select", checking)
    config = {
        "name": "pools",
        "seeds": 1,
        "tasks": 1500,
        "scenario": {
            "agents": [
                {"group": "a", "count": 6, "skills": {"x": 1.0}, "capacity": 2},
                {"group": "b", "count": 5, "skills": {"x": 0.5, "y": 1.0}},
            ],
            "workload": {
                "arrivals": {"process": "poisson", "rate": 7.0},
                "tasks": [
                    {"type": "tx", "skills": ["x"], "work": {"dist": "exponential", "mean": 1}},
                    {"type": "ty", "skills": ["y"], "work": {"dist": "exponential", "mean": 1}},
                ],
            },
            "failures": {
                "agents": {
                    "up": {"dist": "exponential", "mean": 30},
                    "down": {"dist": "exponential", "mean": 3},
                }
            },
        },
        "policies": [{"name": "p", "dispatch": dispatch, "routing": "random"}],
    }
    spec = RunSpec(run_id="t", policy="p", point=(), seed=0, config=config)
    simulate_world(spec)
    assert len(seen) > 1000 and min(seen) >= 1

"""The default path's shortcuts: chosen only where they hold, and the same model as without them."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

from kossim.bench.mmc import bench_config
from kossim.dists import Empirical, Exponential, Lognormal, Normal, draws, sampler
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.streams import stream
from policies.agent import Worker
from policies.coordinator import Queueing
from policies.instant import InstantQueueing, InstantWorker
from tests.unit.test_engine import config, constant


def _behaviours(spec: RunSpec) -> tuple[type, set[type]]:
    world, _ = simulate_world(spec)
    return type(world.coordinator), {type(a.behaviour) for a in world.agents}


def test_instant_variants_only_on_the_plain_instant_kernel() -> None:
    """Untraced on an instant network: the variants; traced, or with latency: the originals."""
    plain = bench_config(500, 50)
    assert _behaviours(RunSpec.make(plain, "central", (), 1)) == (InstantQueueing, {InstantWorker})
    traced = RunSpec.make(plain, "central", (), 1, trace=True)
    assert _behaviours(traced) == (Queueing, {Worker})
    slow = bench_config(500, 50)
    slow["scenario"]["network"] = {"latency": constant(0.01)}
    assert _behaviours(RunSpec.make(slow, "central", (), 1)) == (Queueing, {Worker})
    timed = bench_config(500, 50)  # a retry timeout replaces _send, which the variant inlines
    timed["policies"][0]["retry"] = {"id": "immediate", "max_attempts": 2, "timeout": 0.5}
    assert _behaviours(RunSpec.make(timed, "central", (), 1)) == (Queueing, {InstantWorker})


_FAIL = {"up": {"dist": "exponential", "mean": 20.0}, "down": constant(1.0)}
_CASES: dict[str, dict[str, Any]] = {
    "central random": {"dispatch": "central"},
    "central round robin": {"dispatch": "central", "routing": "round_robin"},
    "central jsq, priority": {"dispatch": "central", "routing": "jsq", "queue": "priority"},
    "central srpt": {"dispatch": "central", "queue": "srpt"},
    "push jsq": {"dispatch": "push", "routing": "jsq"},
    "central, retry with timeout": {
        "dispatch": "central",
        "retry": {"id": "immediate", "max_attempts": 2, "timeout": 0.5},
    },
    "central, queue limit": {
        "dispatch": "central",
        "coordinator": {"id": "queueing", "queue_limit": 3},
    },
}


def _mmc(policy: dict[str, Any], on_failure: str | None) -> dict[str, Any]:
    cfg = config(
        tasks=1500,
        agents=[{"group": "w", "count": 4, "capacity": 2}],
        policy=policy,
        types=[
            {"type": "a", "work": {"dist": "exponential", "mean": 1.0}, "priority": 1},
            {"type": "b", "work": {"dist": "exponential", "mean": 0.5}, "share": 0.5},
        ],
    )
    cfg["scenario"]["workload"]["arrivals"] = {"process": "poisson", "rate": 6.0}
    if on_failure is not None:
        cfg["scenario"]["failures"] = {"agents": {**_FAIL, "on_failure": on_failure}}
    return cfg


@pytest.mark.parametrize("on_failure", [None, "resume", "requeue"])
@pytest.mark.parametrize("case", sorted(_CASES))
def test_instant_variants_run_the_same_model(
    case: str, on_failure: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With and without the instant variants: the same task columns, metrics and counts."""
    spec = RunSpec.make(_mmc(_CASES[case], on_failure), "p", (), 3)
    fast_world, fast = simulate_world(spec)
    fast_metrics = repr(simulate(spec).metrics)  # repr: NaN equals NaN
    monkeypatch.setattr("policies.instant.INSTANT", {})
    slow_world, slow = simulate_world(spec)
    assert type(slow_world.coordinator) is Queueing
    assert sorted(fast) == sorted(slow)
    for name in fast:
        np.testing.assert_array_equal(fast[name], slow[name], err_msg=name)
    assert fast_world.message_counts() == slow_world.message_counts()
    assert repr(simulate(spec).metrics) == fast_metrics


@pytest.mark.parametrize(
    "dist",
    [
        Exponential(dist="exponential", mean=2.0),
        Lognormal(dist="lognormal", mean=1.0, scv=2.0),
        Normal(dist="normal", mean=1.0, sd=2.0),
        Empirical(dist="empirical", values=[0.5, 1.0, 4.0]),
    ],
)
def test_draws_give_a_samplers_numbers(dist: Any) -> None:
    """Across block boundaries, ``draws`` gives what ``sampler`` gives, as Python floats."""
    a, b = sampler(dist, stream(7, "x")), draws(dist, stream(7, "x"))
    got = [b() for _ in range(2500)]
    assert got == [a() for _ in range(2500)]
    assert all(type(x) is float for x in got)


def test_a_run_leaves_the_garbage_collector_idle() -> None:
    """Nothing per task outlives its task: 21,000 tasks run no more than a few young
    collections (a buffered tuple per finished task ran one every ~550 tasks)."""
    spec = RunSpec.make(bench_config(20_000, 1_000), "central", (), 1)
    runs: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        result = simulate(spec)
    finally:
        gc.callbacks.remove(count)
    assert result.status == "ok", result.error
    assert len(runs) <= 5, runs

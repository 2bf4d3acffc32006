"""Offered load from the scenario, and the overload warnings a run leaves in its manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kossim.analysis.overload import offered_load
from kossim.config.experiment import load_experiment
from kossim.config.models import Scenario
from kossim.lab import run_experiment


def _scenario(**changes: Any) -> Scenario:
    data: dict[str, Any] = {
        "agents": [{"group": "worker", "count": 8, "speed": 1.0, "capacity": 1}],
        "workload": {
            "arrivals": {"process": "poisson", "rate": 7.2},
            "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1.0}}],
        },
    }
    data.update(changes)
    return Scenario.model_validate(data)


def test_mmc_load_is_lambda_over_c_mu() -> None:
    """M/M/8 at rate 7.2 with unit work: 7.2 / 8 = 0.9; capacity, speed and renewal
    arrivals enter as slots x speed and 1 / mean inter-arrival time."""
    assert offered_load(_scenario()).load == pytest.approx(0.9)
    faster = _scenario(agents=[{"group": "w", "count": 4, "speed": 1.5, "capacity": 2}])
    assert offered_load(faster).load == pytest.approx(7.2 / 12)
    renewal = _scenario(
        workload={
            "arrivals": {"process": "renewal", "interarrival": {"dist": "constant", "value": 0.25}},
            "tasks": [
                {"type": "a", "share": 3, "work": {"dist": "constant", "value": 1.0}},
                {"type": "b", "share": 1, "work": {"dist": "exponential", "mean": 3.0}},
            ],
        }
    )
    assert offered_load(renewal).load == pytest.approx(4 * (0.75 * 1 + 0.25 * 3) / 8)


def test_failures_reduce_capacity_by_availability() -> None:
    """Agents up 90 % of the time carry 0.9 / 0.9 = 1.0."""
    failures = {
        "agents": {
            "up": {"dist": "exponential", "mean": 90},
            "down": {"dist": "exponential", "mean": 10},
        }
    }
    assert offered_load(_scenario(failures=failures)).load == pytest.approx(1.0)


def test_skill_pools_expose_an_overloaded_pool() -> None:
    """Half the work needs gpu, which only 2 of 10 agents have: that pool is at
    3.6 / 2 = 1.8 although the fleet as a whole is at 7.2 / 10 = 0.72."""
    scenario = _scenario(
        agents=[
            {"group": "cpu", "count": 8, "skills": {"cpu": 1.0}},
            {"group": "gpu", "count": 2, "skills": {"cpu": 1.0, "gpu": 1.0}},
        ],
        workload={
            "arrivals": {"process": "poisson", "rate": 7.2},
            "tasks": [
                {
                    "type": "a",
                    "share": 1,
                    "skills": ["cpu"],
                    "work": {"dist": "constant", "value": 1},
                },
                {
                    "type": "b",
                    "share": 1,
                    "skills": ["gpu"],
                    "work": {"dist": "constant", "value": 1},
                },
            ],
        },
    )
    load = offered_load(scenario)
    assert load.pools == pytest.approx({"cpu": 3.6 / 10, "gpu": 3.6 / 2})
    assert load.load == pytest.approx(1.8)


def test_an_overloaded_run_warns_and_a_stable_one_does_not(
    write_experiment: Callable[..., Path], tiny_data: dict[str, Any], tmp_path: Path
) -> None:
    """At 2.5x capacity the manifest records the load and warns of overload, of tasks left
    in flight and of growth; at 0.5 it records the load and stays quiet."""
    tiny_data["sweep"] = {"scenario.workload.arrivals.rate": [1.5, 7.5]}
    path = write_experiment(tiny_data)
    out = tmp_path / "out"
    run_experiment(load_experiment(path), out, executor="serial", progress=False)
    load = json.loads((out / "manifest.json").read_text())["load"]
    assert [round(p["offered_load"], 3) for p in load["points"]] == [0.5, 2.5]
    assert [p["label"] for p in load["points"]] == ["rate=1.5", "rate=7.5"]
    warnings = load["warnings"]
    assert all(w.startswith("at rate=7.5: ") for w in warnings)
    assert any("offered load 2.50 >= 1" in w for w in warnings)
    assert any("still in flight" in w and "central" in w and "random" in w for w in warnings)
    assert any("grew through the run" in w for w in warnings)

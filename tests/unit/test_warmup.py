"""warmup: auto cuts each run by MSER-5 and reports the cut (metric and manifest)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kossim.config.experiment import load_experiment
from kossim.lab import run_experiment
from kossim.runspec import RunSpec
from kossim.sim import simulate_world
from kossim.sim.world import SAMPLES


def _auto(tiny_data: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in tiny_data.items() if k != "sweep"}
    data.update(warmup="auto", horizon=2000, seeds=2)
    data["scenario"]["workload"]["arrivals"]["rate"] = 2.7  # 90 % load on 3 agents
    return data


def test_auto_cut_is_on_the_sampling_grid_and_counts_stay_exact(tiny_data: dict[str, Any]) -> None:
    """The cut is a sample time; measured tasks are exactly those arriving after it."""
    data = _auto(tiny_data)
    world, cols = simulate_world(RunSpec.make({**data, "policies": data["policies"][:1]},
                                              "central", (), 3))  # fmt: skip
    cut = world.measure_start
    assert cut is not None and 0 < cut < 1000  # MSER-5 searches the first half only
    step = 2000 / SAMPLES
    assert abs(cut / step - round(cut / step)) < 1e-9
    measured = cols["measured"]
    assert (cols["arrival"][measured] >= cut).all() and (cols["arrival"][~measured] <= cut).all()
    assert world.arrived_measured == int(measured.sum())


def test_auto_cut_is_reported(
    tiny_data: dict[str, Any], write_experiment: Callable[..., Path], tmp_path: Path
) -> None:
    """Each run's cut is the metric warmup_time and the manifest's per-run warmup."""
    path = write_experiment(_auto(tiny_data))
    run_experiment(load_experiment(path), tmp_path, executor="serial", progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    cuts = metrics[metrics.metric == "warmup_time"].set_index(["policy", "seed"])["value"]
    for run in manifest["runs"]:
        assert run["warmup"] == cuts[(run["policy"], run["seed"])]
    assert np.all(cuts > 0)
    lost = metrics[(metrics.metric == "lost") & (metrics.scope == "all")]["value"]
    assert (lost == 0).all()

"""warmup: auto cuts each run by MSER-5 and reports the cut (metric and manifest)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kossim.analysis.stats import mser5
from kossim.config.experiment import load_experiment
from kossim.lab import run_experiment
from kossim.runspec import RunSpec
from kossim.sim import simulate_world
from kossim.sim.task import DONE
from kossim.sim.world import SAMPLES


def _auto(tiny_data: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in tiny_data.items() if k != "sweep"}
    data.update(warmup="auto", horizon=2000, seeds=2)
    data["scenario"]["workload"]["arrivals"]["rate"] = 2.7  # 90 % load on 3 agents
    return data


def _one_run(data: dict[str, Any], seed: int) -> tuple[Any, dict[str, np.ndarray]]:
    spec = RunSpec.make({**data, "policies": data["policies"][:1]}, "central", (), seed)
    return simulate_world(spec)


def _mser_cut(cols: dict[str, np.ndarray]) -> float:
    """MSER-5's own choice on the run's sojourn series, before snapping."""
    done = cols["state"] == DONE
    _, cut = mser5((cols["end"] - cols["arrival"])[done], cols["arrival"][done])
    assert cut is not None
    return cut


@pytest.mark.parametrize("seed", [2, 3, 5])
def test_auto_cut_is_msers_choice_on_the_nearest_grid_point(
    tiny_data: dict[str, Any], seed: int
) -> None:
    """The cut is the sample time (or the start, 0) nearest to MSER-5's choice; measured tasks
    are exactly those arriving after it."""
    data = _auto(tiny_data)
    world, cols = _one_run(data, seed)
    step = 2000 / SAMPLES
    chosen = _mser_cut(cols)
    cut = float(world.measure_start or 0.0)
    assert cut == pytest.approx(step * round(chosen / step))
    assert 0 <= cut < 1000  # MSER-5 searches the first half only
    measured = cols["measured"]
    assert (cols["arrival"][measured] >= cut).all() and (cols["arrival"][~measured] <= cut).all()
    assert world.arrived_measured == int(measured.sum())


def test_a_short_transient_is_reported_as_no_cut(tiny_data: dict[str, Any]) -> None:
    """At half load MSER-5 drops under half a grid step, so nothing is cut and warmup_time
    is 0, not the first sample time (as every run of a 70 % load experiment once showed)."""
    data = _auto(tiny_data)
    data["scenario"]["workload"]["arrivals"]["rate"] = 1.5
    world, cols = _one_run(data, 0)
    assert _mser_cut(cols) < 2000 / SAMPLES / 2
    assert not world.measure_start
    assert cols["measured"].all()


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
    step = 2000 / SAMPLES
    assert np.allclose(cuts / step, np.round(cuts / step)) and (cuts >= 0).all()
    from kossim.report import render_report

    render_report(tmp_path)
    facts = (tmp_path / "report.md").read_text()
    median = np.sort(cuts.to_numpy())[len(cuts) // 2]
    assert "auto (MSER-5 per run): cut at " in facts
    assert f"median {median:g}; no cut in {int((cuts == 0).sum())} of {len(cuts)} runs" in facts
    lost = metrics[(metrics.metric == "lost") & (metrics.scope == "all")]["value"]
    assert (lost == 0).all()

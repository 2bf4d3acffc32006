"""Every bundled experiment loads, plans and runs on a short horizon without losing a task."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kossim.config.experiment import load_experiment
from kossim.lab import run_experiment

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").rglob("*.yaml"))


def _shortened(path: Path) -> list[str]:
    """Overrides that keep the experiment's shape but make it cheap: 2 seeds, short run."""
    exp = load_experiment(path).experiment
    sets = ["seeds=2"]
    if exp.horizon is not None:
        horizon = min(exp.horizon, 40 * exp.scenario.workload.arrivals.mean_interarrival() * 50)
        sets += [
            f"horizon={horizon}",
            f"warmup={0.1 * horizon if exp.warmup != 'auto' else 'auto'}",
        ]
    else:
        sets += ["tasks=300", "warmup_tasks=30"]
    return sets


def test_every_experiment_is_found() -> None:
    """The quick start and the theory cases are among the bundled experiments."""
    names = {p.relative_to(ROOT / "experiments").as_posix() for p in EXPERIMENTS}
    assert "quickstart.yaml" in names
    assert any(n.startswith("theory/") for n in names)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_runs(path: Path, tmp_path: Path) -> None:
    """Short run of every policy and sweep point: all runs ok, no task lost."""
    loaded = load_experiment(path, _shortened(path))
    outcome = run_experiment(loaded, tmp_path, executor="serial", progress=False)
    assert outcome.n_failed == 0
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    lost = metrics[(metrics.metric == "lost") & (metrics.scope == "all")]
    assert len(lost) == len(outcome.plan.specs)
    assert (lost.value == 0).all()
    arrived = metrics[(metrics.metric == "arrived") & (metrics.scope == "all")]
    assert (arrived.value > 0).all()

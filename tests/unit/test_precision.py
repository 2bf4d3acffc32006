"""Sequential stopping on a relative CI half-width (``--precision``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kossim.analysis.stats import t_interval
from kossim.config.experiment import load_experiment
from kossim.errors import KossimInputError
from kossim.lab import run_experiment
from kossim.lab.precision import PrecisionTarget, parse_target, run_to_precision


def test_parse_target() -> None:
    """METRIC[@SCOPE]:REL, with REL strictly between 0 and 1."""
    assert parse_target("sojourn_mean:0.05") == PrecisionTarget("sojourn_mean", 0.05)
    assert parse_target("wait_mean@priority=0:0.1", 40) == PrecisionTarget(
        "wait_mean", 0.1, "priority=0", 40
    )
    for bad in ("sojourn_mean", "sojourn_mean:2", ":0.1", "x:abc", "sojourn_mean@tier=1:0.1"):
        with pytest.raises(KossimInputError):
            parse_target(bad)


def test_an_unknown_metric_is_refused_before_any_run() -> None:
    """A misspelt metric is an input error naming the nearest metric, not an empty round."""
    with pytest.raises(KossimInputError, match="did you mean 'sojourn_mean'"):
        parse_target("sojurn_mean:0.05")


def test_adds_seeds_until_every_group_meets_the_target(
    write_experiment: Callable[..., Path], tmp_path: Path, tiny_data: dict[str, Any]
) -> None:
    """Seeds grow (at most doubling) until each policy x point has half-width <= rel x mean."""
    del tiny_data["sweep"]
    path = write_experiment(tiny_data, seeds=3)
    target = PrecisionTarget("sojourn_mean", 0.08, max_seeds=40)
    out = tmp_path / "out"
    outcome = run_to_precision(
        load_experiment(path),
        target,
        run_experiment,
        out_dir=out,
        executor="serial",
        progress=False,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    rounds = manifest["precision"]["rounds"]
    assert rounds[0]["seeds"] == 3 and len(rounds) > 1
    assert all(b["seeds"] <= 2 * a["seeds"] for a, b in pairwise(rounds))
    metrics = pd.read_parquet(out / "metrics.parquet")
    soj = metrics[(metrics.metric == "sojourn_mean") & (metrics.scope == "all")]
    final_n = rounds[-1]["seeds"]
    assert manifest["precision"]["met"] == (final_n < 40 or rounds[-1]["met"])
    for _, part in soj.groupby("policy"):
        assert len(part) == final_n
        mean, low, high = t_interval(part["value"].to_numpy())
        if manifest["precision"]["met"]:
            assert (high - low) / 2 <= 0.08 * mean
    # Later rounds reuse the runs already done: each run executed exactly once.
    assert outcome.n_ok == soj["policy"].nunique() * final_n and outcome.n_skipped == 0

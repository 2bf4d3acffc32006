"""The judges' pandas-free operations (:mod:`kossim.analysis.rows`) agree with the pandas
functions they replace in ``kossim run``: paired differences and summary comparisons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kossim.analysis.rows import compare_rows, nan_mean, paired_rows, rows_of
from kossim.analysis.stats import compare_summaries, paired_difference, summarize


def _frame(seed: int) -> pd.DataFrame:
    """Two policies at three sweep points over uneven seeds (some missing, some NaN)."""
    rng = np.random.default_rng(seed)
    rows = []
    for policy in ("b", "a"):
        for rate in (3.0, 1.5, 2.0):
            seeds = rng.permutation(8)[: rng.integers(2, 8)]
            for s in seeds:
                value = math.nan if rng.random() < 0.1 else float(rng.gamma(2.0, rate))
                rows.append((policy, int(s), rate, "m", "all", value))
    return pd.DataFrame(rows, columns=["policy", "seed", "x.rate", "metric", "scope", "value"])


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_paired_rows_match_paired_difference(seed: int, method: str) -> None:
    frame = _frame(seed)
    theirs = paired_difference(frame, "m", "all", "a", "b", method=method)  # type: ignore[arg-type]
    ours = paired_rows(rows_of(frame)[1], "m", "all", "a", "b", ["x.rate"], method=method)  # type: ignore[arg-type]
    assert [repr(d) for d in ours] == [repr(d) for d in theirs]


@pytest.mark.parametrize("seed", range(10))
def test_compare_rows_match_compare_summaries(seed: int) -> None:
    stored, new = summarize(_frame(seed)), summarize(_frame(seed + 100))
    new = new.iloc[1:]  # a row missing from the new results
    theirs = compare_summaries(stored, new, rel=0.1).to_dict("records")
    theirs = [{**row, "new_n": float(row["new_n"])} for row in theirs]
    ours = compare_rows(rows_of(stored), rows_of(new), rel=0.1)
    assert repr(ours) == repr(theirs)


def test_nan_mean_is_pandas_mean() -> None:
    values = [*(np.random.default_rng(1).normal(size=300) * 1e6), math.nan]
    assert nan_mean(values) == pd.Series(values).mean()

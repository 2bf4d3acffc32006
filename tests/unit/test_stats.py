"""Output statistics: exact values against scipy on small fixed arrays."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from kossim.analysis.stats import (
    compare_summaries,
    mser5,
    paired_difference,
    required_seeds,
    summarize,
    swept_columns,
    t_interval,
)

RATE = "scenario.workload.arrivals.rate"


def tidy(values: dict[tuple[str, float], list[float]], metric: str = "m") -> pd.DataFrame:
    """Tidy rows from {(policy, rate): per-seed values}, in dict order."""
    rows = [
        {"policy": pol, "seed": seed, RATE: rate, "metric": metric, "scope": "all", "value": v}
        for (pol, rate), vals in values.items()
        for seed, v in enumerate(vals)
    ]
    return pd.DataFrame(rows)


def test_t_interval_matches_textbook_formula() -> None:
    """[1, 2, 3, 4]: mean 2.5 +- t(0.975, 3) * sd / 2."""
    mean, low, high = t_interval([1, 2, 3, 4])
    half = sps.t.ppf(0.975, 3) * np.std([1, 2, 3, 4], ddof=1) / 2
    assert mean == 2.5
    assert low == pytest.approx(2.5 - half, rel=1e-12)
    assert high == pytest.approx(2.5 + half, rel=1e-12)


def test_t_interval_matches_scipy_at_other_level() -> None:
    """A 90 % interval equals scipy's t.interval around the mean."""
    data = np.array([3.1, 2.7, 4.4, 3.9, 3.3, 2.2])
    _, low, high = t_interval(data, level=0.9)
    ref = sps.t.interval(0.9, len(data) - 1, loc=data.mean(), scale=sps.sem(data))
    assert (low, high) == pytest.approx(ref, rel=1e-12)


def test_t_interval_degenerate_samples() -> None:
    """One value has no spread to estimate; none has no mean; NaNs are dropped."""
    mean, low, high = t_interval([7.0])
    assert mean == 7.0 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(x) for x in t_interval([]))
    assert t_interval([1, 2, 3, 4, float("nan")]) == t_interval([1, 2, 3, 4])
    with pytest.raises(ValueError, match="got 95"):
        t_interval([1, 2], level=95)


def test_summarize_keeps_first_seen_order_and_counts() -> None:
    """Policies and sweep points keep input order (not alphabetical); n counts seeds."""
    frame = tidy(
        {
            ("zeta", 7.2): [1, 2, 3, 4],
            ("zeta", 6.0): [5, 5, 5],
            ("alpha", 7.2): [10, 12],
            ("alpha", 6.0): [9],
        }
    )
    out = summarize(frame)
    assert list(out.columns) == [
        "policy",
        RATE,
        "metric",
        "scope",
        "mean",
        "std",
        "ci_low",
        "ci_high",
        "n",
    ]
    assert list(zip(out["policy"], out[RATE], strict=True)) == [
        ("zeta", 7.2),
        ("zeta", 6.0),
        ("alpha", 7.2),
        ("alpha", 6.0),
    ]
    assert out["n"].tolist() == [4, 3, 2, 1]
    first = out.iloc[0]
    assert (first["mean"], first["ci_low"], first["ci_high"]) == pytest.approx(
        t_interval([1, 2, 3, 4])
    )
    assert out.iloc[1]["ci_low"] == out.iloc[1]["ci_high"] == 5.0  # no spread
    assert math.isnan(out.iloc[3]["ci_low"])  # one seed


def test_summarize_order_is_per_column_first_seen() -> None:
    """Interleaved input still groups by policy first, then sweep point, deterministically."""
    frame = tidy({("b", 2.0): [1.0], ("a", 1.0): [2.0], ("b", 1.0): [3.0], ("a", 2.0): [4.0]})
    out = summarize(frame)
    assert list(zip(out["policy"], out[RATE], strict=True)) == [
        ("b", 2.0),
        ("b", 1.0),
        ("a", 2.0),
        ("a", 1.0),
    ]
    assert swept_columns(frame) == [RATE]
    assert swept_columns(out) == [RATE]


def test_summarize_ignores_nan_values() -> None:
    """A seed that measured nothing (NaN) does not count towards n or the mean."""
    out = summarize(tidy({("p", 1.0): [2.0, float("nan"), 4.0]}))
    assert out["n"].tolist() == [2]
    assert out["mean"].tolist() == [3.0]


def _crn_pair(shift: float, seed: int = 11, n: int = 12) -> pd.DataFrame:
    """Two policies sharing a large per-seed effect (common random numbers)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(50.0, 10.0, size=n)
    a = shared + shift + rng.normal(0.0, 0.2, size=n)
    b = shared + rng.normal(0.0, 0.2, size=n)
    return tidy({("a", 1.0): list(a), ("b", 1.0): list(b)})


def test_paired_t_detects_shift_and_matches_ttest_rel() -> None:
    """A 0.5 shift hidden under seed noise of sd 10 is found by pairing on seed."""
    frame = _crn_pair(0.5)
    (res,) = paired_difference(frame, "m", "all", "a", "b")
    a = frame[frame.policy == "a"]["value"].to_numpy()
    b = frame[frame.policy == "b"]["value"].to_numpy()
    assert res.p_value == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-10)
    assert res.p_value < 1e-4
    assert res.ci_low < 0.5 < res.ci_high
    assert res.mean_diff == pytest.approx(np.mean(a - b))
    assert (res.n, res.point) == (12, {RATE: 1.0})


def test_paired_t_does_not_flag_null_difference() -> None:
    """Same distribution for both policies: no significant difference."""
    (res,) = paired_difference(_crn_pair(0.0), "m", "all", "a", "b")
    assert res.p_value > 0.05
    assert res.ci_low < 0.0 < res.ci_high


def test_paired_difference_one_result_per_point_and_pairs_on_seed() -> None:
    """Points come out in first-seen order; unmatched seeds are left out."""
    frame = tidy(
        {("a", 7.0): [3, 4, 5], ("b", 7.0): [1, 2], ("a", 6.0): [1, 1], ("b", 6.0): [1, 1]}
    )
    res = paired_difference(frame, "m", "all", "a", "b")
    assert [r.point[RATE] for r in res] == [7.0, 6.0]
    assert (res[0].n, res[0].mean_diff, res[0].p_value) == (2, 2.0, 0.0)  # constant shift
    assert (res[1].mean_diff, res[1].p_value) == (0.0, 1.0)


def test_bootstrap_is_reproducible_with_fixed_seed() -> None:
    """Same seed, same interval; the shift is detected; another seed differs slightly."""
    frame = _crn_pair(0.5)
    (r1,) = paired_difference(frame, "m", "all", "a", "b", method="bootstrap", n_boot=2000, seed=3)
    (r2,) = paired_difference(frame, "m", "all", "a", "b", method="bootstrap", n_boot=2000, seed=3)
    (r3,) = paired_difference(frame, "m", "all", "a", "b", method="bootstrap", n_boot=2000, seed=4)
    assert r1 == r2
    assert (r1.ci_low, r1.ci_high) != (r3.ci_low, r3.ci_high)
    assert r1.ci_low < r1.mean_diff < r1.ci_high
    assert r1.p_value == pytest.approx(1 / 2001)
    (null,) = paired_difference(_crn_pair(0.0), "m", "all", "a", "b", method="bootstrap")
    assert null.p_value > 0.05


def test_mser5_exact_on_step() -> None:
    """One batch of 10s then zeros: dropping exactly that batch removes all bias."""
    assert mser5([10.0] * 5 + [0.0] * 45) == (5, None)


def test_mser5_finds_planted_transient() -> None:
    """200 points falling from 50, then 2000 iid N(0, 1): cut within 3 batches of 200."""
    rng = np.random.default_rng(7)
    warm = np.linspace(50.0, 0.0, 200, endpoint=False) + rng.normal(size=200)
    series = np.concatenate([warm, rng.normal(size=2000)])
    index, time = mser5(series, times=np.arange(series.size) * 0.5)
    assert abs(index - 200) <= 15
    assert time == index * 0.5


def test_mser5_stationary_and_short_series() -> None:
    """No transient: little or nothing is cut; too short to batch: nothing is cut."""
    index, _ = mser5(np.random.default_rng(1).normal(size=2000))
    assert index <= 200
    assert mser5([1.0, 2.0, 3.0]) == (0, None)
    assert mser5([1.0, 2.0, 3.0], times=[4.0, 5.0, 6.0]) == (0, 4.0)


def test_required_seeds_is_minimal_and_reports_precision() -> None:
    """The estimate is the smallest n whose t half-width meets the target."""
    values = [9.0, 11.0, 10.5, 9.5, 10.0]
    check = required_seeds(values, rel_halfwidth=0.01)
    s = np.std(values, ddof=1)
    target = 0.01 * 10.0
    n = check.required

    def half(k: int) -> float:
        return float(sps.t.ppf(0.975, k - 1) * s / math.sqrt(k))

    assert not check.met
    assert half(n) <= target < half(n - 1)
    assert check.rel_halfwidth == pytest.approx(half(5) / 10.0)
    loose = required_seeds(values, rel_halfwidth=0.1)
    assert loose.met and loose.required == 5
    assert not required_seeds([3.0], 0.1).met


def test_compare_summaries_statuses() -> None:
    """Overlapping CIs agree, separated ones differ, absent rows are missing."""
    stored = summarize(tidy({("p", 1.0): [1, 2, 3], ("q", 1.0): [1, 2, 3], ("r", 1.0): [1, 2]}))
    new = summarize(tidy({("p", 1.0): [1.5, 2.5, 3.5], ("q", 1.0): [10, 11, 12]}))
    out = compare_summaries(stored, new)
    assert out["status"].tolist() == ["agree", "differs", "missing"]
    assert compare_summaries(stored, new, rel=5.0)["status"].tolist()[:2] == ["agree", "agree"]


def test_nearest_index_rounds_to_the_closer_grid_point() -> None:
    """Nearest point of an ascending grid, the earlier on a tie, clamped at both ends."""
    from kossim.analysis.stats import nearest_index

    grid = [0.0, 10.0, 20.0, 30.0]
    assert [nearest_index(grid, v) for v in (-3, 0.4, 4.9, 5.0, 5.1, 26, 99)] == [
        0,
        0,
        0,
        0,
        1,
        3,
        3,
    ]

"""Output analysis for replicated simulation experiments.

A kossim experiment runs every policy on the same seeds, so each metric comes
as one independent observation per seed. This module turns those observations
into the numbers users read and CI checks: Student-t confidence intervals
(``summary.csv``), paired policy differences, the MSER-5 warm-up rule, and the
sequential-precision test "are there enough seeds yet?".

Everything here is a pure function of plain arrays and tidy DataFrames; it
never runs a simulation.
"""

from __future__ import annotations

import bisect
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pandas is loaded by the functions of frames that need it, not by
    import pandas as pd  # kossim run, which summarises without it (kossim.lab.tables)

__all__ = [
    "METRIC_COLUMNS",
    "SUMMARY_COLUMNS",
    "PairedDifference",
    "PrecisionCheck",
    "canonical",
    "compare_summaries",
    "mser5",
    "nearest_index",
    "paired_difference",
    "paired_t",
    "required_seeds",
    "summarize",
    "swept_columns",
    "t_halfwidth",
    "t_interval",
]

METRIC_COLUMNS = ("policy", "seed", "metric", "scope", "value")
"""Columns of tidy metric rows that are not swept paths."""

SUMMARY_COLUMNS = ("mean", "std", "ci_low", "ci_high", "n")
"""Statistics :func:`summarize` appends to the group columns."""

_NON_SWEPT = frozenset(METRIC_COLUMNS) | frozenset(SUMMARY_COLUMNS)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie strictly between 0 and 1 (got {level!r})")


def swept_columns(frame: pd.DataFrame) -> list[str]:
    """Swept-path columns of a metrics or summary frame, in column order.

    Both tables put one column per swept dotted path next to fixed columns,
    so whatever is not a fixed column is a sweep coordinate.
    """
    return [str(c) for c in frame.columns if c not in _NON_SWEPT]


def _clean(values: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    """Finite-or-NaN float array with NaNs dropped: a run that measured nothing
    (say, no completed task) must not poison the mean of the others."""
    arr = np.asarray(values, dtype=float).ravel()
    return arr[~np.isnan(arr)]


def _t_ppf(q: float, df: Any) -> Any:
    """Student-t quantile: ``scipy.stats.t.ppf`` computes it with this very function, but
    importing ``scipy.stats`` costs twice as long as ``scipy.special`` (every ``kossim run``
    summarises its results)."""
    from scipy.special import stdtrit

    return stdtrit(df, q)


def t_halfwidth(std: np.ndarray, n: np.ndarray, level: float) -> np.ndarray:
    """Student-t half-width; NaN where fewer than two observations exist."""
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        quant = _t_ppf(0.5 + level / 2.0, np.where(n >= 2, n - 1, np.nan))
        return np.where(n >= 2, quant * np.asarray(std, dtype=float) / np.sqrt(n), np.nan)


def t_interval(
    values: Sequence[float] | np.ndarray | pd.Series, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval ``(mean, low, high)``.

    Seeds are independent replications, so the t interval on their means is
    the textbook interval for a simulation output. NaN observations are
    dropped; one observation gives NaN bounds, none gives all NaN.
    """
    _check_level(level)
    arr = _clean(values)
    if arr.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(arr.mean())
    if arr.size == 1:
        return (mean, math.nan, math.nan)
    half = float(t_halfwidth(np.array([arr.std(ddof=1)]), np.array([arr.size]), level)[0])
    return (mean, mean - half, mean + half)


def summarize(
    metrics: pd.DataFrame, by: list[str] | None = None, level: float = 0.95
) -> pd.DataFrame:
    """Aggregate tidy metric rows over seeds into ``summary.csv`` rows.

    ``by`` defaults to ``policy, <swept...>, metric, scope``. Groups come out
    ordered by the first-seen position of each ``by`` value, column by column:
    policies in file order, sweep points in sweep order. That keeps tables and
    plots in the order the user wrote, never alphabetical, and it is
    deterministic for a given input order. ``std`` is the sample standard
    deviation; ``n`` counts non-NaN seeds.
    """
    import pandas as pd

    _check_level(level)
    if by is None:
        by = ["policy", *swept_columns(metrics), "metric", "scope"]
    codes: dict[str, tuple[np.ndarray, Any]] = {}
    keyed = pd.DataFrame(index=range(len(metrics)))
    for col in by:
        codes[col] = pd.factorize(metrics[col], sort=False, use_na_sentinel=False)
        keyed[col] = codes[col][0]
    keyed["value"] = pd.to_numeric(metrics["value"], errors="coerce").to_numpy(dtype=float)
    agg = keyed.groupby(by, sort=True)["value"].agg(["mean", "std", "count"]).reset_index()
    out = pd.DataFrame({col: pd.Index(codes[col][1]).take(agg[col]) for col in by})
    n = agg["count"].to_numpy(dtype=int)
    half = t_halfwidth(agg["std"].to_numpy(dtype=float), n, level)
    out["mean"] = agg["mean"].to_numpy(dtype=float)
    out["std"] = agg["std"].to_numpy(dtype=float)
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    out["n"] = n
    return out


@dataclass(frozen=True)
class PairedDifference:
    """Paired comparison of policy ``a`` against ``b`` at one sweep point.

    ``mean_diff`` is the mean over seeds of ``a - b``; the interval and
    ``p_value`` (two-sided, null: no difference) are for that mean.
    """

    point: dict[str, Any]
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    method: str
    level: float


def paired_t(diffs: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Interval and p-value of a one-sample t test on paired differences.

    Identical differences on every seed (zero spread, up to float rounding)
    are a deterministic
    shift under common random numbers: p is 0 for a non-zero shift, 1 for
    none, instead of the NaN scipy returns.
    """
    mean, low, high = t_interval(diffs, level)
    if diffs.size < 2:
        return low, high, math.nan
    spread = float(diffs.std(ddof=1))
    if spread == 0.0 or spread <= 1e-12 * abs(mean):  # constant up to float rounding
        return mean, mean, 1.0 if mean == 0.0 else 0.0
    from scipy import stats as sps  # half a second to import: only when a test is asked for

    p_value = float(sps.ttest_1samp(diffs, 0.0).pvalue)
    return low, high, p_value


def _bootstrap(
    diffs: np.ndarray, level: float, n_boot: int, seed: int
) -> tuple[float, float, float]:
    """Percentile interval and two-sided bootstrap p-value of the mean difference.

    The p-value recentres the bootstrap means on zero (the null) and counts
    how often they lie at least as far from zero as the observed mean,
    with the usual +1 correction so it is never exactly 0.
    """
    if diffs.size < 2:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(n_boot, diffs.size))].mean(axis=1)
    alpha = 1.0 - level
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    observed = float(diffs.mean())
    extreme = np.count_nonzero(np.abs(means - observed) >= abs(observed))
    return float(low), float(high), (1.0 + extreme) / (n_boot + 1.0)


def paired_difference(
    metrics: pd.DataFrame,
    metric: str,
    scope: str,
    a: str,
    b: str,
    keys: list[str] | None = None,
    level: float = 0.95,
    method: Literal["t", "bootstrap"] = "t",
    n_boot: int = 10_000,
    seed: int = 0,
) -> list[PairedDifference]:
    """Per-seed differences ``a - b`` of one metric, paired on seed and sweep point.

    kossim gives every policy the same workload and failure schedule for a
    given seed (common random numbers), so the two runs sharing a seed differ
    only by policy. Differencing them removes the seed-to-seed noise they
    share, and the paired test is far sharper than comparing two independent
    intervals. ``keys`` are the sweep columns (default: every swept column);
    one result per point, in first-seen order. Seeds missing or NaN for either
    policy are left out of the pairing.
    """
    import pandas as pd

    _check_level(level)
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method must be 't' or 'bootstrap' (got {method!r})")
    keys = swept_columns(metrics) if keys is None else list(keys)
    rows = metrics[
        (metrics["metric"] == metric) & (metrics["scope"] == scope) & metrics["policy"].isin([a, b])
    ]
    if rows.duplicated([*keys, "seed", "policy"]).any():
        raise ValueError(f"several rows per (policy, point, seed) for {metric!r}/{scope!r}")
    results: list[PairedDifference] = []
    for point, group in _points(rows, keys):
        by_seed = group.set_index("seed")
        value_a = pd.to_numeric(by_seed.loc[by_seed["policy"] == a, "value"], errors="coerce")
        value_b = pd.to_numeric(by_seed.loc[by_seed["policy"] == b, "value"], errors="coerce")
        diffs = _clean(value_a.sub(value_b))  # aligned on seed; unmatched seeds become NaN
        if method == "t":
            low, high, p_value = paired_t(diffs, level)
        else:
            low, high, p_value = _bootstrap(diffs, level, n_boot, seed)
        mean = float(diffs.mean()) if diffs.size else math.nan
        results.append(
            PairedDifference(point, mean, low, high, p_value, int(diffs.size), method, level)
        )
    return results


def _points(rows: pd.DataFrame, keys: list[str]) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Split rows by sweep point, in first-seen order."""
    if not keys:
        return [({}, rows)] if len(rows) else []
    out = []
    for values, group in rows.groupby(keys, sort=False, dropna=False):
        vals = values if isinstance(values, tuple) else (values,)
        out.append((dict(zip(keys, vals, strict=True)), group))
    return out


def mser5(
    series: Sequence[float] | np.ndarray, times: Sequence[float] | np.ndarray | None = None
) -> tuple[int, float | None]:
    """MSER-5 warm-up truncation point of one output series.

    Reference: K. P. White Jr., "An effective truncation heuristic for bias
    reduction in simulation output", Simulation 69(6):323-334, 1997; the
    batch-size-5 variant as in White, Cobb and Spratt (WSC 2000). The series
    is cut into ``k`` batch means of 5 observations (a trailing partial batch
    is ignored); for each ``d`` in ``0 .. k // 2`` the statistic
    ``sum_{j >= d} (Z_j - mean(Z_d..))^2 / (k - d)^2`` estimates the squared
    standard error of the truncated mean, and the ``d`` that minimises it
    (earliest on ties) is chosen. Restricting ``d`` to the first half guards
    against the rule throwing away most of a short run; a minimum at the
    boundary suggests the run is too short to have warmed up.

    Returns ``(5 * d, times[5 * d])``: the number of leading observations to
    drop and, when ``times`` is given, the time of the first kept one.
    """
    obs = np.asarray(series, dtype=float).ravel()
    k = obs.size // 5
    if k < 2:
        return 0, _time_at(times, 0)
    batches = obs[: 5 * k].reshape(k, 5).mean(axis=1)
    batches = batches - batches.mean()  # centring avoids cancellation in the sums below
    suffix_sum = np.cumsum(batches[::-1])[::-1]
    suffix_sq = np.cumsum((batches**2)[::-1])[::-1]
    d = np.arange(k // 2 + 1)
    m = (k - d).astype(float)
    sse = np.maximum(suffix_sq[d] - suffix_sum[d] ** 2 / m, 0.0)
    best = int(np.argmin(sse / m**2))
    return 5 * best, _time_at(times, 5 * best)


def nearest_index(grid: Sequence[float], value: float) -> int:
    """Index of the point of the ascending ``grid`` nearest to ``value`` (the earlier on a tie)."""
    if not grid:
        raise ValueError("nearest_index needs a non-empty grid")
    i = bisect.bisect_left(grid, value)
    if i >= len(grid):
        return len(grid) - 1
    if i > 0 and value - grid[i - 1] <= grid[i] - value:
        return i - 1
    return i


def _time_at(times: Sequence[float] | np.ndarray | None, index: int) -> float | None:
    if times is None:
        return None
    arr = np.asarray(times, dtype=float).ravel()
    return float(arr[index]) if index < arr.size else None


@dataclass(frozen=True)
class PrecisionCheck:
    """Outcome of :func:`required_seeds`.

    ``rel_halfwidth`` is the current CI half-width over ``|mean|``; ``required``
    estimates the total number of seeds that would meet the target if the
    sample standard deviation stays as it is (at least ``n``).
    """

    met: bool
    n: int
    mean: float
    halfwidth: float
    rel_halfwidth: float
    required: int


def required_seeds(
    values: Sequence[float] | np.ndarray | pd.Series,
    rel_halfwidth: float,
    level: float = 0.95,
    max_seeds: int = 1_000_000,
) -> PrecisionCheck:
    """Does the current sample meet a relative half-width target, and if not, how many seeds would?

    This is the sequential-precision rule (Law, *Simulation Modeling and
    Analysis*, sec. 9.4.1): keep adding replications until the t half-width is
    at most ``rel_halfwidth * |mean|``. The estimate of seeds needed holds the
    sample standard deviation fixed and searches the smallest ``n`` with
    ``t(n-1) * s / sqrt(n) <= target``; it is capped at ``max_seeds``. With
    fewer than two values, or a zero mean, the target cannot be judged and
    ``met`` is False.
    """
    _check_level(level)
    if rel_halfwidth <= 0:
        raise ValueError(f"rel_halfwidth must be positive (got {rel_halfwidth!r})")
    arr = _clean(values)
    mean, low, high = t_interval(arr, level)
    half = (high - low) / 2.0
    if arr.size < 2 or mean == 0.0:
        return PrecisionCheck(False, int(arr.size), mean, half, math.nan, max(int(arr.size), 2))
    rel = half / abs(mean)
    target = rel_halfwidth * abs(mean)
    std = float(arr.std(ddof=1))
    return PrecisionCheck(
        rel <= rel_halfwidth,
        int(arr.size),
        mean,
        half,
        rel,
        _seeds_for(std, target, level, int(arr.size), max_seeds),
    )


def _seeds_for(std: float, target: float, level: float, n_now: int, cap: int) -> int:
    """Smallest n >= max(n_now, 2) whose t half-width with spread ``std`` is <= target."""
    if std == 0.0:
        return max(n_now, 2)
    from scipy.special import ndtri

    z = float(ndtri(0.5 + level / 2.0))
    n = max(n_now, 2, math.ceil((z * std / target) ** 2))
    while n < cap and _t_ppf(0.5 + level / 2.0, n - 1) * std / math.sqrt(n) > target:
        n += 1  # starts at the normal-theory size, so only a few t corrections remain
    return min(n, cap)


def canonical(value: Any) -> str:
    """Canonical text of a key cell, so YAML, Parquet and CSV spellings of one
    sweep value (``6``, ``6.0``, ``"6"``) or policy name compare equal."""
    pandas = sys.modules.get("pandas")  # pd.NA exists only once pandas is loaded
    if value is None or (pandas is not None and value is pandas.NA):
        return "nan"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        return "nan" if math.isnan(number) else format(number, ".12g")
    return str(value)


def _keyed(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Frame indexed by the canonical text of its key columns, for type-proof joins."""
    out = frame.copy()
    rows = out[keys].itertuples(index=False)
    out["_key"] = ["\x1f".join(canonical(v) for v in row) for row in rows]
    return out.drop_duplicates("_key").set_index("_key")


def _interval(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Mean and CI, a missing CI (one seed) collapsing onto the mean."""
    mean = frame["mean"].astype(float)
    low = frame["ci_low"].astype(float).fillna(mean)
    return mean, low, frame["ci_high"].astype(float).fillna(mean)


def compare_summaries(stored: pd.DataFrame, new: pd.DataFrame, rel: float = 0.0) -> pd.DataFrame:
    """Row-by-row agreement of a new summary with a stored one.

    Two rows agree when their confidence intervals overlap (a missing
    interval collapses onto the mean) or their means differ by at most
    ``rel`` of the stored mean (plus a relative 1e-9 for float round trips),
    or both means are NaN. Returns the stored rows' key columns with
    ``stored_*`` and ``new_*`` mean/ci_low/ci_high, ``new_n`` and ``status``:
    ``agree``, ``differs`` or ``missing`` (no new row). Both frames must have
    the same swept columns.
    """
    swept = swept_columns(stored)
    if set(swept) != set(swept_columns(new)):
        raise ValueError(f"swept columns differ: {swept} vs {swept_columns(new)}")
    keys = ["policy", *swept, "metric", "scope"]
    old = _keyed(stored, keys)
    fresh = _keyed(new, keys).reindex(old.index)
    old_mean, old_lo, old_hi = _interval(old)
    new_mean, new_lo, new_hi = _interval(fresh)
    overlap = (new_lo <= old_hi) & (old_lo <= new_hi)
    slack = rel * old_mean.abs() + 1e-9 * old_mean.abs().clip(lower=1.0)
    close = (new_mean - old_mean).abs() <= slack
    agree = overlap | close | (old_mean.isna() & new_mean.isna())
    missing = fresh["n"].isna()
    out = old[keys].reset_index(drop=True)
    columns = {
        "stored_mean": old_mean,
        "stored_ci_low": old_lo,
        "stored_ci_high": old_hi,
        "new_mean": new_mean,
        "new_ci_low": new_lo,
        "new_ci_high": new_hi,
        "new_n": fresh["n"],
    }
    for name, series in columns.items():
        out[name] = series.to_numpy()
    out["status"] = np.where(missing, "missing", np.where(agree, "agree", "differs"))
    return out

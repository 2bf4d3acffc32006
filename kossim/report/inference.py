"""Confidence intervals and paired comparisons the report prints.

Kept beside the report (rather than borrowed from elsewhere) so the report
reads a results folder with nothing but numpy, pandas and scipy. Both functions
use the Student t distribution, matching ``summary.csv``: seeds are few, so a
normal approximation would overstate confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["PairedDifference", "paired_difference", "summarise"]


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-pair differences, its 95 % interval and the paired t-test p-value."""

    n: int
    mean: float
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def stars(self) -> str:
        """``**`` below 0.01, ``*`` below 0.05, else empty."""
        if math.isnan(self.p_value):
            return ""
        return "**" if self.p_value < 0.01 else "*" if self.p_value < 0.05 else ""


def paired_difference(diffs: np.ndarray, level: float = 0.95) -> PairedDifference:
    """Paired t inference on ``diffs`` (policy minus baseline, one per seed and point).

    A paired t-test is a one-sample t-test of the differences, so this equals
    ``scipy.stats.ttest_rel``. With zero spread (up to float rounding) t is infinite:
    a non-zero difference then gets p = 0 and a zero difference p = 1, rather
    than the NaN scipy returns, because common random numbers make exactly
    identical outcomes (e.g. ``arrived``) common and they are not "unknown".
    """
    values = np.asarray(diffs, dtype=float)
    values = values[~np.isnan(values)]
    n = int(values.size)
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(values.mean())
    if n == 1:
        return PairedDifference(1, mean, math.nan, math.nan, math.nan)
    sd = float(values.std(ddof=1))
    if sd <= 1e-12 * float(np.abs(values).max()):  # constant up to float rounding
        return PairedDifference(n, mean, mean, mean, 0.0 if mean != 0.0 else 1.0)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    p_value = float(stats.ttest_1samp(values, 0.0).pvalue)
    return PairedDifference(n, mean, mean - half, mean + half, p_value)


def summarise(frame: pd.DataFrame, keys: list[str], level: float = 0.95) -> pd.DataFrame:
    """Mean, std and Student t interval of ``value`` per group, like ``summary.csv``."""
    grouped = frame.groupby(keys, sort=False, dropna=False)["value"]
    out = grouped.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    dof = (out["n"] - 1).clip(lower=1)
    t_crit = stats.t.ppf(0.5 + level / 2, dof)
    half = t_crit * out["std"].fillna(0.0) / np.sqrt(out["n"])
    half = half.where(out["n"] > 1, np.nan)
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out

"""Confidence intervals and paired comparisons the report prints.

Thin adapters over :mod:`kossim.analysis.stats`, so the report's intervals and tests
are the very ones behind ``summary.csv`` and ``kossim check`` (Student t:
seeds are few, so a normal approximation would overstate confidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kossim.analysis.stats import paired_t, summarize

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

    A paired t test is a one-sample t test of the differences (it equals
    ``scipy.stats.ttest_rel``); :func:`kossim.analysis.stats.paired_t` also gives p = 0
    for an identical non-zero difference on every seed, and p = 1 for none.
    """
    values = np.asarray(diffs, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan)
    low, high, p_value = paired_t(values, level)
    return PairedDifference(int(values.size), float(values.mean()), low, high, p_value)


def summarise(frame: pd.DataFrame, keys: list[str], level: float = 0.95) -> pd.DataFrame:
    """Mean, std and Student t interval of ``value`` per group, like ``summary.csv``."""
    return summarize(frame, by=keys, level=level)

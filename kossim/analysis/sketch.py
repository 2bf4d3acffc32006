"""A quantile sketch with a relative-error guarantee (DDSketch, Masson et al., VLDB 2019).

Values go into logarithmic buckets ``(gamma**(i-1), gamma**i]`` with
``gamma = (1 + alpha) / (1 - alpha)``; a bucket answers with
``2 * gamma**i / (gamma + 1)``, within ``alpha`` of every value in it. So the
sketch's estimate of an order statistic ``x[k]`` of the values added is within
relative error ``alpha`` of it, whatever the distribution, in memory that grows
with the *range* of the values (``log(max / min) / log(gamma)`` buckets: about
2,100 for twenty decades at ``alpha = 0.01``), never with their number.

Values are added a numpy chunk at a time (no Python work per value). A
quantile at ``q`` % interpolates linearly between the estimates of the two
order statistics around rank ``q / 100 * (n - 1)``, as ``np.percentile`` does
between the exact ones, so it is within ``alpha`` of ``np.percentile``'s value
when the values are positive. The exact minimum and maximum are kept too, and
estimates are clamped into them (the 0 % and 100 % quantiles are exact). The
``ddsketch`` package is not used: its ``add`` is one Python call per value, and
it is not in the lab's package index.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ALPHA", "Sketch"]

ALPHA = 0.01
"""The relative accuracy of the run metrics' quantiles (1 %)."""

_TINY = 1e-300  # below this a value counts as zero


class Sketch:
    """DDSketch of relative accuracy ``alpha``: bucket counts of positive and negative values."""

    __slots__ = ("_ln_gamma", "_neg", "_pos", "alpha", "count", "gamma", "max", "min", "zeros")

    def __init__(self, alpha: float = ALPHA) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), not {alpha}")
        self.alpha = alpha
        self.gamma = (1 + alpha) / (1 - alpha)
        self._ln_gamma = math.log(self.gamma)
        self._pos: dict[int, int] = {}
        self._neg: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.min = math.inf  # exact: estimates are clamped into [min, max]
        self.max = -math.inf

    def _into(self, store: dict[int, int], values: np.ndarray) -> None:
        if not values.size:
            return
        keys = np.ceil(np.log(values) / self._ln_gamma).astype(np.int64)
        uniq, counts = np.unique(keys, return_counts=True)
        for k, c in zip(uniq.tolist(), counts.tolist(), strict=True):
            store[k] = store.get(k, 0) + c

    def add(self, values: np.ndarray) -> None:
        """Add every value of a 1-d float array (NaN is not allowed)."""
        values = np.asarray(values, dtype=np.float64)
        if np.isnan(values).any():
            raise ValueError("a sketch takes no NaN")
        if not values.size:
            return
        self.count += int(values.size)
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))
        self._into(self._pos, values[values > _TINY])
        self._into(self._neg, -values[values < -_TINY])
        self.zeros += int(((values >= -_TINY) & (values <= _TINY)).sum())

    def merge(self, other: Sketch) -> None:
        if other.gamma != self.gamma:
            raise ValueError("sketches of different accuracy do not merge")
        for mine, theirs in ((self._pos, other._pos), (self._neg, other._neg)):
            for k, c in theirs.items():
                mine[k] = mine.get(k, 0) + c
        self.zeros += other.zeros
        self.count += other.count
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def __len__(self) -> int:
        return len(self._pos) + len(self._neg) + (1 if self.zeros else 0)

    def _order(self, rank: int) -> float:
        """The estimate of the ``rank``-th smallest value (0-based)."""
        return min(max(self._bucket_value(rank), self.min), self.max)

    def _bucket_value(self, rank: int) -> float:
        seen = 0
        for k in sorted(self._neg, reverse=True):  # the most negative first
            seen += self._neg[k]
            if seen > rank:
                return -2 * self.gamma**k / (self.gamma + 1)
        seen += self.zeros
        if seen > rank:
            return 0.0
        for k in sorted(self._pos):
            seen += self._pos[k]
            if seen > rank:
                return 2 * self.gamma**k / (self.gamma + 1)
        raise IndexError(rank)

    def quantile(self, q: float) -> float:
        """The value at ``q`` % (0 to 100), NaN when empty."""
        return self.quantiles([q])[0]

    def quantiles(self, qs: list[float] | np.ndarray) -> list[float]:
        if self.count == 0:
            return [float("nan")] * len(qs)
        out = []
        for q in qs:
            rank = float(q) / 100 * (self.count - 1)
            lo = math.floor(rank)
            hi = min(lo + 1, self.count - 1)
            a = self._order(lo)
            frac = rank - lo
            out.append(float(a if frac == 0 or hi == lo else a + frac * (self._order(hi) - a)))
        return out

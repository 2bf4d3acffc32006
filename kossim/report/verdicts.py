"""Who leads a metric, judged by paired tests rather than by the bare means.

Under common random numbers every policy sees the same workload per seed, so
policies are compared by their per-seed differences (paired t test). A policy
*leads* a metric at a sweep point when it has the best mean in the metric's
direction and every other policy is significantly worse than it, by more
than 1 % of the best mean; when the runner-up is within noise (or within
1 %), no one leads and the report says so. A neutral
metric (direction 0, such as utilisation) never has a leader.

The p-values are per comparison, not adjusted for the number of metrics and
points shown; a report with many rows will show some "significant" chance
differences at the 5 % level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from kossim.report.inference import PairedDifference, paired_difference

__all__ = ["ALPHA", "MIN_EFFECT", "Judge", "Standing", "percent"]

ALPHA = 0.05
"""Significance level of every verdict in the report (two-sided paired t test)."""
MIN_EFFECT = 0.01
"""Smallest difference, relative to the best mean, that can make a winner: a 0.03 %
throughput gap can be significant over many seeds yet means nothing."""


@dataclass(frozen=True)
class Standing:
    """The ranking of one metric at one sweep point and scope.

    ``best`` has the best mean in the metric's direction (``None`` when the
    metric is neutral or fewer than two policies have values); ``ties`` are
    the other policies not significantly worse than ``best``; ``runner_up``
    is the paired comparison of the second-best policy minus ``best``.
    """

    metric: str
    point: str
    sign: int
    means: dict[str, float]
    best: str | None
    ties: tuple[str, ...]
    runner_up: str | None
    versus_runner_up: PairedDifference | None

    @property
    def winner(self) -> str | None:
        """``best`` when it beats every other policy significantly, else ``None``."""
        return self.best if self.best is not None and not self.ties else None


class Judge:
    """Paired verdicts over a tidy ``metrics`` frame with a ``point`` label column."""

    def __init__(self, metrics: pd.DataFrame | None, policies: list[str]) -> None:
        self.policies = policies
        self._wide: dict[tuple[str, str], pd.DataFrame] = {}
        self._metrics = metrics

    def wide(self, metric: str, scope: str) -> pd.DataFrame:
        """Values indexed by ``(point, seed)``, one column per policy."""
        key = (metric, scope)
        if key not in self._wide:
            frame = self._metrics
            if frame is None:
                self._wide[key] = pd.DataFrame()
            else:
                rows = frame[(frame["metric"] == metric) & (frame["scope"] == scope)]
                self._wide[key] = (
                    rows.pivot_table(index=["point", "seed"], columns="policy", values="value")
                    if not rows.empty
                    else pd.DataFrame()
                )
        return self._wide[key]

    def at_point(self, metric: str, scope: str, point: str) -> pd.DataFrame:
        """Per-seed values at one point (rows: seeds, columns: policies)."""
        wide = self.wide(metric, scope)
        if wide.empty or point not in wide.index.get_level_values("point"):
            return pd.DataFrame()
        values = wide.xs(point, level="point")
        return values if isinstance(values, pd.DataFrame) else values.to_frame()

    def standing(self, metric: str, scope: str, point: str, sign: int) -> Standing:
        """Rank the policies at ``point``: best mean, then paired tests against it."""
        values = self.at_point(metric, scope, point)
        means = {
            p: float(values[p].mean())
            for p in self.policies
            if p in values.columns and values[p].notna().any()
        }
        if sign == 0 or len(means) < 2:
            return Standing(metric, point, sign, means, None, (), None, None)
        order = sorted(means, key=lambda p: sign * -means[p])  # best first
        best = order[0]
        ties = []
        runner_result: PairedDifference | None = None
        for other in order[1:]:
            result = paired_difference((values[other] - values[best]).to_numpy(float))
            if runner_result is None:
                runner_result = result
            material = abs(result.mean) > MIN_EFFECT * abs(means[best])
            worse = sign * result.mean < 0 and result.p_value < ALPHA and material
            if not worse:
                ties.append(other)
        return Standing(metric, point, sign, means, best, tuple(ties), order[1], runner_result)

    def versus(
        self, metric: str, scope: str, point: str, policy: str, baseline: str
    ) -> PairedDifference | None:
        """``policy`` minus ``baseline``, paired by seed at one point."""
        values = self.at_point(metric, scope, point)
        if policy not in values.columns or baseline not in values.columns:
            return None
        result = paired_difference((values[policy] - values[baseline]).to_numpy(float))
        return result if result.n else None

    def winners(self, metric: str, scope: str, point: str, sign: int) -> set[str]:
        """The policy to mark best (a set of at most one), by :meth:`standing`."""
        winner = self.standing(metric, scope, point, sign).winner
        return {winner} if winner is not None else set()


def percent(diff: float, base: float) -> float:
    """``diff`` as a percentage of ``base`` (NaN when ``base`` is zero)."""
    return 100.0 * diff / base if base and not math.isnan(base) else math.nan

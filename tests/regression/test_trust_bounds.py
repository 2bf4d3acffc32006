"""Experimental mode against the Beta posterior: how long promotion and quarantine take.

Prior mean ``t`` worth ``s`` outcomes, threshold ``theta``, floor ``f``. After n
verified outcomes, k of them bad, the reputation is ``(s t + n - k) / (s + n)``:

* promotion when ``(1 - theta) n - k >= s (theta - t)``: a walk that gains
  ``1 - theta`` per good outcome and loses ``theta`` per bad one, drift
  ``1 - theta - q`` for an agent whose results are bad with probability q;
* quarantine when ``k - (1 - f) n > s (t - f)``: a walk that gains ``f`` per bad
  outcome and loses ``1 - f`` per good one, drift ``q - (1 - f)``.

By Wald's identity the mean number of outcomes to cross is the level crossed
over the drift, the level lying between the barrier and the barrier plus one
step: an interval that the mean over seeds (its 95 % confidence interval)
must meet. The least number of outcomes (all good, or all bad) bounds every
single case. Fixed seeds 0-9 of ``experiments/routing/trust.yaml``'s shadow policy.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from kossim.config.experiment import load_experiment
from kossim.runspec import RunSpec
from kossim.sim import simulate
from policies.trust import promotion_bound, quarantine_bound

ROUTING = Path(__file__).resolve().parents[2] / "experiments" / "routing"
S, TRUST, THETA, FLOOR = 10.0, 0.75, 0.9, 0.6
Q_GOOD, Q_BAD = 0.005, 0.5


@functools.cache
def _runs(policy: str) -> tuple[dict[tuple[str, str], float], ...]:
    """The metrics of ``policy`` in each of seeds 0-9, by (metric, scope)."""
    loaded = load_experiment(ROUTING / "trust.yaml")
    config = loaded.experiment.model_dump(mode="json", exclude_none=True)
    runs = []
    for seed in range(10):
        result = simulate(RunSpec.make(config, policy, (), seed))
        assert result.status == "ok", result.error
        runs.append({(m, scope): v for m, scope, v in result.metrics})
    return tuple(runs)


def _per_agent(metric: str, group: str, policy: str = "shadow") -> list[float]:
    """``metric`` per newcomer of ``group`` over seeds 0-9."""
    prefix = f"agent={group}-"
    return [
        v
        for run in _runs(policy)
        for (m, s), v in run.items()
        if m == metric and s.startswith(prefix)
    ]


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    x = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


@pytest.mark.slow
def test_a_good_newcomer_is_promoted_within_the_posteriors_bound() -> None:
    outcomes = _per_agent("promotion_outcomes", "newgood")
    assert len(outcomes) == 20 and not any(math.isnan(v) for v in outcomes)  # all promoted
    least = promotion_bound(TRUST, S, THETA)
    assert least == 15
    assert min(outcomes) >= least
    level, step, drift = S * (THETA - TRUST), 1 - THETA, 1 - THETA - Q_GOOD
    low, high = level / drift, (level + step) / drift  # 15.8 .. 16.8
    mean, ci_low, ci_high = _mean_ci(outcomes)
    assert ci_low <= high and ci_high >= low, (mean, ci_low, ci_high, low, high)


@pytest.mark.slow
def test_a_bad_newcomer_is_quarantined_within_the_posteriors_bound() -> None:
    outcomes = _per_agent("quarantine_outcomes", "newbad")
    assert len(outcomes) == 20 and not any(math.isnan(v) for v in outcomes)  # all quarantined
    least = quarantine_bound(TRUST, S, FLOOR)
    assert least == 3
    assert min(outcomes) >= least
    level, step, drift = S * (TRUST - FLOOR), FLOOR, Q_BAD - (1 - FLOOR)
    low, high = level / drift, (level + step) / drift  # 15 .. 21
    mean, ci_low, ci_high = _mean_ci(outcomes)
    assert ci_low <= high and ci_high >= low, (mean, ci_low, ci_high, low, high)


@pytest.mark.slow
def test_shadows_cut_bad_results_delivered_tenfold_in_every_seed() -> None:
    """With 20 % bad agents, at a reported shadow cost (seed by seed: paired runs)."""
    for blind, shadow in zip(_runs("blind"), _runs("shadow"), strict=True):
        assert blind[("bad_delivered", "all")] >= 10 * shadow[("bad_delivered", "all")]
        assert shadow[("shadow_work", "all")] > 0 == blind[("shadow_work", "all")]

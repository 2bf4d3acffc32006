"""Bundles of exponential subtasks on idle agents against their closed forms.

With k agents always free, a bundle's k subtasks start on arrival and run in
parallel, so its sojourn is an order statistic of k independent exponential
service times of rate mu: the maximum for ``independent`` (and ``gang``)
bundles, with mean H_k / mu (H_k the k-th harmonic number), and the m-th
smallest for a ``quorum`` of m, with mean (1/k + 1/(k-1) + ... + 1/(k-m+1)) / mu.

Load is kept low (40 agents, 2 % busy) so agents are idle, and the check is a
99 % Student-t interval on the per-seed means of fixed seeds; a waiting
subtask would only add time, and the wait is reported beside the sojourn to
show it is nil.
"""

from __future__ import annotations

from typing import Any

import pytest

from kossim.analysis.stats import t_interval
from kossim.runspec import RunSpec
from kossim.sim import simulate

SEEDS = range(8)
MU = 2.0  # service rate: mean work 0.5


def harmonic(k: int) -> float:
    return sum(1.0 / i for i in range(1, k + 1))


def _bundle_config(k: int, mode: str, m: int | None, coordinator: Any) -> dict[str, Any]:
    bundle: dict[str, Any] = {"k": k, "mode": mode}
    if m is not None:
        bundle["m"] = m
    return {
        "name": "bundle-theory",
        "tasks": 3000,
        "scenario": {
            "agents": [{"group": "w", "count": 40}],
            "workload": {
                "arrivals": {"process": "poisson", "rate": 0.4},
                "tasks": [
                    {
                        "type": "b",
                        "work": {"dist": "exponential", "mean": 1.0 / MU},
                        "bundle": bundle,
                    }
                ],
            },
        },
        "policies": [{"name": "p", "coordinator": coordinator}],
    }


def _per_seed(cfg: dict[str, Any], metric: str) -> list[float]:
    out = []
    for seed in SEEDS:
        result = simulate(RunSpec.make(cfg, "p", (), seed))
        assert result.status == "ok", result.error
        rows = {(name, scope): v for name, scope, v in result.metrics}
        assert rows[("lost", "all")] == 0
        assert rows[("wait_mean", "type=b")] < 1e-3, "agents were not idle"
        out.append(rows[(metric, "type=b")])
    return out


@pytest.mark.parametrize(
    ("k", "mode", "m", "coordinator"),
    [
        (2, "independent", None, "queueing"),
        (4, "independent", None, "queueing"),
        (4, "gang", None, "bundles"),
        (3, "quorum", 2, "queueing"),
        (5, "quorum", 1, "bundles"),
    ],
)
def test_bundle_sojourn_on_idle_agents_matches_order_statistics(
    k: int, mode: str, m: int | None, coordinator: str
) -> None:
    """Mean bundle sojourn: H_k / mu when all k must finish; the m-th order statistic's
    mean for a quorum of m."""
    need = k if m is None else m
    expected = sum(1.0 / i for i in range(k - need + 1, k + 1)) / MU
    if m is None:
        assert expected == pytest.approx(harmonic(k) / MU)
    mean, low, high = t_interval(
        _per_seed(_bundle_config(k, mode, m, coordinator), "sojourn_mean"), 0.99
    )
    assert low <= expected <= high, (
        f"{mode} k={k}: {mean:.4f} [{low:.4f}, {high:.4f}] vs {expected:.4f}"
    )

"""The expect: block: validation of each kind and verdicts on synthetic results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from kossim.analysis.check import (
    BaselineExpectation,
    BetterExpectation,
    BoundsExpectation,
    CheckResult,
    Expectation,
    GrowthExpectation,
    WithinExpectation,
    evaluate,
    format_table,
)
from kossim.analysis.stats import summarize

RATE = "scenario.workload.arrivals.rate"
SEEDS = 10
EXPECT = TypeAdapter(list[Expectation])


def results(noise_seed: int = 5) -> pd.DataFrame:
    """Tidy metrics for three policies at two sweep points with common random numbers.

    Per seed, sojourn_mean is central < pod2 < random by clear margins, and
    throughput is the same 7.0 +- noise for all; a ``tie`` policy differs
    from random by a tiny, noisy amount.
    """
    rng = np.random.default_rng(noise_seed)
    rows: list[dict[str, Any]] = []
    for rate in (6.0, 7.2):
        shared = rng.normal(5.0 * rate, 1.0, size=SEEDS)
        jitter = rng.normal(0.0, 0.5, size=SEEDS)
        sojourn = {
            "central": shared,
            "random": shared + 4.0,
            "pod2": shared + 1.0 + rng.normal(0.0, 0.1, size=SEEDS),
            "tie": shared + 4.0 - 0.05 + (jitter - jitter.mean()),
        }
        for policy, values in sojourn.items():
            for seed in range(SEEDS):
                base = {"policy": policy, "seed": seed, RATE: rate}
                rows.append(
                    {**base, "metric": "sojourn_mean", "scope": "all", "value": float(values[seed])}
                )
                rows.append(
                    {
                        **base,
                        "metric": "sojourn_mean",
                        "scope": "priority=0",
                        "value": float(values[seed]) * 0.5,
                    }
                )
                rows.append(
                    {**base, "metric": "throughput", "scope": "all", "value": 7.0 + 0.01 * seed}
                )
    return pd.DataFrame(rows)


def check(
    *specs: dict[str, Any], frame: pd.DataFrame | None = None, base_dir: Path | None = None
) -> list[CheckResult]:
    metrics = results() if frame is None else frame
    return evaluate(
        EXPECT.validate_python(list(specs)), metrics, summarize(metrics), base_dir or Path(".")
    )


def one(spec: dict[str, Any], **kwargs: Any) -> CheckResult:
    (res,) = check(spec, **kwargs)
    return res


# --- validation -------------------------------------------------------------------------


def test_kinds_are_told_apart_by_their_keys() -> None:
    """Each kind is chosen by its characteristic key."""
    parsed = EXPECT.validate_python(
        [
            {"metric": "sojourn_mean", "better": "pod2", "than": "random"},
            {"metric": "throughput", "min": 1},
            {"metric": "wait_mean", "value": 0.7455, "rel": 0.05},
            {"baseline": "summary.csv"},
        ]
    )
    kinds = [BetterExpectation, BoundsExpectation, WithinExpectation, BaselineExpectation]
    assert [type(p) for p in parsed] == kinds
    better = parsed[0]
    assert isinstance(better, BetterExpectation)
    assert (better.scope, better.significant, better.level, better.at) == ("all", False, 0.05, None)


def test_expectation_embeds_in_a_config_model() -> None:
    """The union works as a field type of a strict pydantic model."""

    class Experiment(BaseModel):
        model_config = ConfigDict(extra="forbid")
        expect: list[Expectation] = []

    exp = Experiment.model_validate({"expect": [{"metric": "lost", "max": 0}]})
    assert isinstance(exp.expect[0], BoundsExpectation)
    assert Experiment.model_validate(exp.model_dump()) == exp


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"metric": "sojourn_mean", "better": "a", "than": "b", "colour": "red"}, "colour"),
        ({"metric": "sojourn_mean", "min": 0, "policy": "a", "than": "b"}, "policy"),
        ({"metric": "sojourn_mean"}, "an expectation needs better/than"),
        ({"metric": "utilization", "better": "a", "than": "b"}, "add direction"),
        ({"metric": "sojourn_mean", "better": "a", "than": "a"}, "same policy"),
        ({"metric": "sojourn_mean", "better": "a", "than": "b", "level": 1.5}, "level"),
        ({"metric": "sojourn_mean", "value": 1.0}, "exactly one tolerance"),
        ({"metric": "sojourn_mean", "value": 1.0, "rel": 0.1, "abs": 1}, "exactly one"),
        ({"metric": "sojourn_mean", "min": 3, "max": 1}, "exceeds"),
        ({"metric": "sojourn_mean", "min": 0, "on": "median"}, "on"),
        ({"baseline": "s.csv", "rel": -1}, "rel"),
        ({"metric": "sojourn_mean", "growth": {RATE: [6.0]}, "max_ratio": 2}, "two sweep values"),
        ({"metric": "sojourn_mean", "growth": {RATE: [6.0, 7.2]}}, "min_ratio, max_ratio"),
        (
            {"metric": "sojourn_mean", "growth": {RATE: [6, 7.2]}, "min_ratio": 2, "max_ratio": 1},
            "exceeds",
        ),
        (
            {"metric": "sojourn_mean", "growth": {RATE: [6, 7.2]}, "max_ratio": 2, "at": {RATE: 6}},
            "both the growth path and in at",
        ),
    ],
)
def test_invalid_expectations_are_rejected(spec: dict[str, Any], message: str) -> None:
    """Unknown keys, unknown kinds and inconsistent fields fail at load time."""
    with pytest.raises(ValidationError, match=message):
        EXPECT.validate_python([spec])


def test_explicit_direction_allows_neutral_metric() -> None:
    """A metric without a known direction is fine once the direction is stated."""
    (exp,) = EXPECT.validate_python(
        [{"metric": "utilization", "better": "a", "than": "b", "direction": "higher"}]
    )
    assert isinstance(exp, BetterExpectation)
    assert exp.resolved_direction == "higher"


# --- better / than ----------------------------------------------------------------------


def test_better_passes_when_true_and_reports_numbers() -> None:
    """pod2 has lower sojourn than random at every point; the detail shows means and p."""
    res = one({"metric": "sojourn_mean", "better": "pod2", "than": "random", "significant": True})
    assert res.passed, res.detail
    assert "rate=6.0: pod2" in res.detail and "rate=7.2: pod2" in res.detail
    assert "p=" in res.detail and "n=10" in res.detail


def test_better_fails_when_false_with_useful_detail() -> None:
    """random is not better than central: fails at both points, saying so."""
    res = one({"metric": "sojourn_mean", "better": "random", "than": "central"})
    assert not res.passed
    assert res.detail.startswith("2 of 2 points fail")
    assert "(not better)" in res.detail and "diff +4" in res.detail


def test_better_higher_direction() -> None:
    """Equal throughput is not better in either direction."""
    res = one({"metric": "throughput", "better": "pod2", "than": "random"})
    assert not res.passed
    assert "diff +0" in res.detail


def test_small_noisy_difference_is_not_significant() -> None:
    """tie is 0.05 below random on average with noise of sd 0.5: better, not significantly."""
    spec = {"metric": "sojourn_mean", "better": "tie", "than": "random"}
    assert one(spec).passed
    res = one({**spec, "significant": True})
    assert not res.passed
    assert "not significant at 0.05" in res.detail


def test_better_with_a_bootstrap_test() -> None:
    """method: bootstrap judges significance by a percentile bootstrap of the differences."""
    spec = {"metric": "sojourn_mean", "better": "pod2", "than": "random", "significant": True}
    res = one({**spec, "method": "bootstrap"})
    assert res.passed, res.detail
    noisy = one({"metric": "sojourn_mean", "better": "tie", "than": "random",
                 "significant": True, "method": "bootstrap"})  # fmt: skip
    assert not noisy.passed and "not significant" in noisy.detail


def test_better_at_one_point_and_scope() -> None:
    """at restricts to one sweep point; scope selects a slice."""
    spec = {
        "metric": "sojourn_mean",
        "better": "pod2",
        "than": "random",
        "scope": "priority=0",
        "at": {RATE: 7.2},
    }
    res = one(spec)
    assert res.passed
    assert "rate=7.2" in res.detail and "rate=6.0" not in res.detail
    assert "at scenario.workload.arrivals.rate=7.2" in res.expectation


@pytest.mark.parametrize(
    ("spec", "detail"),
    [
        ({"metric": "wait_mean", "better": "pod2", "than": "random"}, "metric 'wait_mean' not in"),
        ({"metric": "sojourn_mean", "better": "pod3", "than": "random"}, "policy 'pod3' not in"),
        (
            {"metric": "sojourn_mean", "better": "pod2", "than": "random", "scope": "type=etl"},
            "scope 'type=etl'",
        ),
        (
            {"metric": "sojourn_mean", "better": "pod2", "than": "random", "at": {"rate": 7.2}},
            "'rate' is not a swept path",
        ),
        (
            {"metric": "sojourn_mean", "better": "pod2", "than": "random", "at": {RATE: 9}},
            "no sweep point matches",
        ),
        ({"metric": "lost", "max": 0}, "metric 'lost' not in"),
        ({"metric": "sojourn_mean", "value": 1.0, "abs": 1, "policy": "nope"}, "policy 'nope'"),
    ],
)
def test_missing_data_fails_with_clear_detail(spec: dict[str, Any], detail: str) -> None:
    """Missing metric, policy, scope or point is a failed result, never an exception."""
    res = one(spec)
    assert not res.passed
    assert detail in res.detail


# --- bounds -----------------------------------------------------------------------------


def test_bounds_on_mean_for_every_policy() -> None:
    """Throughput mean 7.045 lies in [7, 7.1] for every policy at every point."""
    res = one({"metric": "throughput", "min": 7.0, "max": 7.1})
    assert res.passed, res.detail
    res = one({"metric": "throughput", "max": 7.04})
    assert not res.passed
    assert res.detail.startswith("8 of 8 points fail")
    assert "central rate=6.0: mean 7.045" in res.detail


def test_bounds_on_every_seed_catches_one_outlier() -> None:
    """The mean passes while one seed breaks the bound."""
    frame = results()
    hit = (frame.policy == "pod2") & (frame.seed == 3) & (frame.metric == "throughput")
    frame.loc[hit & (frame[RATE] == 6.0), "value"] = 7.3
    spec = {"metric": "throughput", "policy": "pod2", "max": 7.2}
    assert one(spec, frame=frame).passed
    res = one({**spec, "on": "every_seed"}, frame=frame)
    assert not res.passed
    assert res.detail.startswith("1 of 20 seeds fail: pod2 rate=6.0 seed 3: value 7.3")


def test_bounds_on_ci_end() -> None:
    """on: ci_high bounds the upper end of the interval, not the mean."""
    spec = {"metric": "sojourn_mean", "policy": "central", "at": {RATE: 6.0}}
    summary = summarize(results())
    row = summary[
        (summary.policy == "central")
        & (summary[RATE] == 6.0)
        & (summary.metric == "sojourn_mean")
        & (summary.scope == "all")
    ].iloc[0]
    between = (row["mean"] + row["ci_high"]) / 2
    assert one({**spec, "max": between}).passed
    assert not one({**spec, "max": between, "on": "ci_high"}).passed


# --- within -----------------------------------------------------------------------------


def test_within_passes_and_reports_ci_membership() -> None:
    """Throughput 7.045 is within 1 % of 7.0, and 7.0 lies outside its narrow CI."""
    res = one({"metric": "throughput", "policy": "central", "value": 7.0, "rel": 0.01})
    assert res.passed, res.detail
    assert "7 outside CI" in res.detail
    res = one({"metric": "throughput", "policy": "central", "value": 7.045, "abs": 0.001})
    assert res.passed and "7.045 inside CI" in res.detail


def test_within_fails_with_distance_and_tolerance() -> None:
    """0.1 off with an absolute tolerance of 0.01 fails, showing both numbers."""
    res = one(
        {"metric": "throughput", "policy": "pod2", "value": 7.145, "abs": 0.01, "at": {RATE: 7.2}}
    )
    assert not res.passed
    assert res.detail.startswith("1 of 1 points fail: pod2 rate=7.2: mean 7.045 is 0.1 from")
    assert "(tol 0.01)" in res.detail


# --- baseline ---------------------------------------------------------------------------


def test_baseline_round_trip(tmp_path: Path) -> None:
    """A summary stored as CSV agrees with itself; a shifted result is a regression."""
    metrics = results()
    summarize(metrics).to_csv(tmp_path / "summary.csv", index=False)
    res = one({"baseline": "summary.csv"}, frame=metrics, base_dir=tmp_path)
    assert res.passed, res.detail
    assert res.detail == "24 rows agree with summary.csv"

    shifted = metrics.copy()
    hit = (shifted.policy == "pod2") & (shifted.metric == "sojourn_mean")
    shifted.loc[hit, "value"] *= 1.5
    res = one({"baseline": str(tmp_path / "summary.csv")}, frame=shifted)
    assert not res.passed
    assert res.detail.startswith("4 of 24 rows fail: pod2 rate=6.0 sojourn_mean[all]:")
    assert "vs stored" in res.detail


def test_baseline_metric_filter_and_tolerance(tmp_path: Path) -> None:
    """Only listed metrics are compared; rel widens the tolerance."""
    metrics = results()
    summarize(metrics).to_csv(tmp_path / "summary.csv", index=False)
    shifted = metrics.copy()
    shifted.loc[shifted.metric == "sojourn_mean", "value"] *= 1.2
    spec: dict[str, Any] = {"baseline": "summary.csv"}
    assert not one(spec, frame=shifted, base_dir=tmp_path).passed
    assert one({**spec, "metrics": ["throughput"]}, frame=shifted, base_dir=tmp_path).passed
    assert one({**spec, "rel": 0.25}, frame=shifted, base_dir=tmp_path).passed
    res = one({**spec, "metrics": ["wait_mean"]}, frame=shifted, base_dir=tmp_path)
    assert not res.passed and "'wait_mean' not in baseline" in res.detail


def test_baseline_missing_file_and_rows(tmp_path: Path) -> None:
    """A missing baseline file or a policy gone from the results fails, naming it."""
    res = one({"baseline": "nope.csv"}, base_dir=tmp_path)
    assert not res.passed and "baseline file not found" in res.detail
    metrics = results()
    summarize(metrics).to_csv(tmp_path / "summary.csv", index=False)
    res = one(
        {"baseline": "summary.csv"}, frame=metrics[metrics.policy != "tie"], base_dir=tmp_path
    )
    assert not res.passed
    assert "tie rate=6.0 sojourn_mean[all]: missing from new results" in res.detail


# --- table ------------------------------------------------------------------------------


def test_format_table_shows_verdicts_and_tally() -> None:
    """The text table names each expectation with PASS or FAIL and counts passes."""
    out = format_table(
        check(
            {"metric": "sojourn_mean", "better": "pod2", "than": "random"},
            {"metric": "sojourn_mean", "better": "random", "than": "pod2"},
        ),
        width=200,
    )
    assert "PASS" in out and "FAIL" in out
    assert "sojourn_mean[all]: pod2 better than random (lower is better)" in out
    assert out.rstrip().endswith("1 of 2 expectations passed")


def test_growth_is_a_kind_of_its_own() -> None:
    (parsed,) = EXPECT.validate_python(
        [{"metric": "sojourn_mean", "growth": {RATE: [6.0, 7.2]}, "max_ratio": 2}]
    )
    assert isinstance(parsed, GrowthExpectation) and parsed.path == RATE


def test_growth_judges_the_ratio_of_means_between_two_sweep_points() -> None:
    """sojourn_mean is about 5 x rate (+4 for random): from rate 6 to 7.2 it grows by
    about 1.2 for central and 34 -> 40 for random; the detail shows both means."""
    frame = results()
    means = frame[(frame.metric == "sojourn_mean") & (frame.scope == "all")]
    means = means.groupby(["policy", RATE])["value"].mean()
    expected = means[("central", 7.2)] / means[("central", 6.0)]
    res = one({"metric": "sojourn_mean", "policy": "central", "growth": {RATE: [6.0, 7.2]},
               "min_ratio": 1.1, "max_ratio": 1.3})  # fmt: skip
    assert res.passed, res.detail
    assert res.detail.startswith("central: ") and res.detail.endswith(f"at 7.2: x{expected:.3g}")
    assert f"{means[('central', 6.0)]:.4g} [" in res.detail
    res = one({"metric": "sojourn_mean", "growth": {RATE: [6.0, 7.2]}, "max_ratio": 1.1})
    assert not res.passed
    assert res.detail.startswith("4 of 4 points fail"), res.detail


def test_growth_without_one_of_its_points_fails_saying_which() -> None:
    res = one({"metric": "sojourn_mean", "growth": {RATE: [6.0, 9.9]}, "max_ratio": 2})
    assert not res.passed and "no results at scenario.workload.arrivals.rate=9.9" in res.detail
    res = one({"metric": "sojourn_mean", "growth": {"seeds": [1, 2]}, "max_ratio": 2})
    assert not res.passed and "'seeds' is not a swept path" in res.detail


def test_growth_follows_zipped_paths_and_splits_by_independent_ones() -> None:
    """A path zipped with the growth path (horizon here) changes with it and is no
    dimension of its own; an independent swept path gives one verdict per value."""
    zipped = results()
    zipped["horizon"] = zipped[RATE].map({6.0: 100, 7.2: 200})
    spec = {"metric": "sojourn_mean", "policy": "central", "growth": {RATE: [6.0, 7.2]}}
    res = one({**spec, "max_ratio": 1.3}, frame=zipped)
    assert res.passed and res.detail.startswith("central: "), res.detail
    crossed = pd.concat([results().assign(latency=lat) for lat in (0.0, 0.1)])
    res = one({**spec, "max_ratio": 1.3}, frame=crossed)
    assert res.passed and "central latency=0.0:" in res.detail, res.detail
    assert "central latency=0.1:" in res.detail
    res = one({**spec, "max_ratio": 1.3, "at": {"latency": 0.1}}, frame=crossed)
    assert res.passed and "latency=0.0" not in res.detail, res.detail

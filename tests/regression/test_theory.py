"""Simulated figures against queueing theory.

Each case is an experiment file in ``experiments/theory/``: the test loads it
with the ordinary loader and plan, simulates every run, then

* checks the file's own ``expect:`` block (what ``kossim check`` would judge), and
* checks the theory value against the per-seed means with a 99 % Student-t
  confidence interval, computed here.

Where a second interval is given it uses utilisation as a control variate:
busy time has a known mean (the offered load rho) and co-varies strongly with
waiting, so regressing it out of the per-seed means shrinks the interval a
lot at no cost in bias (Lavenberg & Welch 1981; Law, Simulation Modeling and
Analysis, sec. 11.4). A bias allowance appears only where a finite model
differs from the formula, with its size justified next to it.

Seeds and horizons are sized to keep this module well under a minute; the
``slow`` variants rerun two noisy cases with many more seeds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy import stats as sps

from kossim.analysis.check import evaluate
from kossim.analysis.stats import paired_difference, t_interval
from kossim.config.experiment import load_experiment
from kossim.lab.plan import make_plan
from kossim.runspec import RunSpec
from kossim.sim import simulate

THEORY = Path(__file__).resolve().parents[2] / "experiments" / "theory"
CASES = sorted(p.stem for p in THEORY.glob("*.yaml"))
LEVEL = 0.99


# -- formulas ------------------------------------------------------------------------------


def erlang_c(c: int, offered: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load ``a = lambda / mu``.

    C(c, a) = [a^c / c! / (1 - rho)] / [sum_{k<c} a^k / k! + a^c / c! / (1 - rho)],
    rho = a / c (Kleinrock, Queueing Systems I, sec. 3.5).
    """
    rho = offered / c
    assert rho < 1, f"unstable: rho = {rho}"
    top = offered**c / math.factorial(c) / (1 - rho)
    return top / (sum(offered**k / math.factorial(k) for k in range(c)) + top)


def mmc(c: int, lam: float, mu: float = 1.0) -> dict[str, float]:
    """Erlang C figures of M/M/c: P(wait), Wq, W and L (= lambda W, Little)."""
    p_wait = erlang_c(c, lam / mu)
    wq = p_wait / (c * mu - lam)
    return {"p_wait": p_wait, "wq": wq, "w": wq + 1 / mu, "l": lam * (wq + 1 / mu)}


def power_of_d_mean_field(lam: float, d: int) -> float:
    """Mean sojourn time of power-of-d routing for N -> infinity (mu = 1).

    A fraction s_i = lam^((d^i - 1) / (d - 1)) of queues holds at least i tasks
    (Mitzenmacher 2001; Vvedenskaya, Dobrushin & Karpelevich 1996); the mean queue is
    sum_i s_i and Little's law divides it by lam.
    """
    terms = (lam ** ((d**i - d) / (d - 1)) for i in range(1, 64))
    return sum(t for t in terms if t > 1e-300)


def srpt_mm1_sojourn(lam: float) -> float:
    """Schrage-Miller mean sojourn time of M/M/1 (mu = 1) under preemptive SRPT.

    E[T(x)] = lam m2(x) / (2 (1 - rho(x))^2) + int_0^x dt / (1 - rho(t)), where
    rho(x) = lam int_0^x t dF(t) and m2(x) = int_0^x t^2 dF(t) + x^2 (1 - F(x))
    (Schrage & Miller 1966; Harchol-Balter 2013, ch. 33); E[T] averages it over F.
    """

    def rho(x: float) -> float:  # lam * int_0^x t e^-t dt
        return lam * (1 - math.exp(-x) * (x + 1))

    def m2(x: float) -> float:  # int_0^x t^2 e^-t dt + x^2 e^-x
        return 2 - math.exp(-x) * (x * x + 2 * x + 2) + x * x * math.exp(-x)

    def sojourn(x: float) -> float:
        residence = integrate.quad(lambda t: 1 / (1 - rho(t)), 0, x)[0]
        return lam * m2(x) / (2 * (1 - rho(x)) ** 2) + residence

    return float(integrate.quad(lambda x: sojourn(x) * math.exp(-x), 0, math.inf, limit=200)[0])


def pollaczek_khinchine_wq(lam: float, mean: float, second_moment: float) -> float:
    """M/G/1 FCFS mean wait lam E[S^2] / (2 (1 - rho)): Pollaczek-Khinchine.

    (Kleinrock, Queueing Systems I, sec. 5.6.)
    """
    return lam * second_moment / (2 * (1 - lam * mean))


def mmck(c: int, k: int, lam: float, mu: float = 1.0) -> dict[str, float]:
    """M/M/c/K: blocking probability p_K and mean sojourn W of admitted tasks."""
    a = lam / mu
    weights = [
        a**n / math.factorial(n) if n <= c else a**n / (math.factorial(c) * c ** (n - c))
        for n in range(k + 1)
    ]
    total = sum(weights)
    p = [w / total for w in weights]
    length = sum(n * pn for n, pn in enumerate(p))
    return {"p_block": p[k], "w": length / (lam * (1 - p[k]))}


def mm1_patience_abandonment(lam: float, mu: float, gamma: float, states: int = 2000) -> float:
    """M/M/1+M: the share of arrivals that renege (exponential patience, rate gamma).

    Birth-death chain with death rate mu + (n - 1) gamma in state n (only waiting
    tasks renege); throughput is mu (1 - p_0), and every other arrival abandons.
    ``states`` truncates the chain far beyond any mass (the rates grow with n).
    """
    weights = [1.0]
    for n in range(1, states):
        weights.append(weights[-1] * lam / (mu + (n - 1) * gamma))
    p0 = 1.0 / sum(weights)
    return 1.0 - mu * (1.0 - p0) / lam


def test_formulas_reproduce_the_quoted_figures() -> None:
    """The figures quoted in the experiment files, to four digits."""
    m = mmc(4, 3.2)
    assert round(m["p_wait"], 4) == 0.5964
    assert round(m["wq"], 4) == 0.7455
    assert round(power_of_d_mean_field(0.9, 2), 4) == 2.6141
    assert round(mmc(2, 0.6)["wq"], 4) == 0.0989
    assert round((mmc(2, 1.6)["l"] - mmc(2, 0.6)["l"]) / 1.0, 4) == 3.7851
    assert round(srpt_mm1_sojourn(0.8), 4) == 2.3528
    assert pollaczek_khinchine_wq(0.8, 1.0, 1.0) == pytest.approx(2.0)
    rho, k = 0.8, 5
    assert mmck(1, k, rho)["p_block"] == pytest.approx((1 - rho) * rho**k / (1 - rho ** (k + 1)))
    assert round(mmck(1, 5, 0.8)["w"], 4) == 2.5631
    assert round(mmck(3, 5, 2.7)["p_block"], 5) == 0.16367
    assert round(mmck(3, 5, 2.7)["w"], 4) == 1.2255
    assert round(mmck(3, 3, 2.7)["p_block"], 5) == 0.30874  # Erlang B
    assert round(mm1_patience_abandonment(1.2, 1.0, 0.5), 5) == 0.36620
    # Infinite patience: an M/M/1 below saturation loses nobody.
    assert mm1_patience_abandonment(0.5, 1.0, 0.0) == pytest.approx(0.0, abs=1e-12)
    # Sanity of the SRPT integral: light load tends to the bare service time 1.
    assert srpt_mm1_sojourn(1e-6) == pytest.approx(1.0, rel=1e-4)


# -- running the experiment files ------------------------------------------------------------


def results(case: str, overrides: tuple[str, ...] = ()) -> pd.DataFrame:
    """Tidy metric rows of every run of ``experiments/theory/<case>.yaml``.

    ``overrides`` are ``--set`` style ``path=value`` strings (the slow variants
    use them for more seeds and longer horizons). Each test runs its own case
    once, so the module splits cleanly across pytest-xdist workers.
    """
    plan = make_plan(load_experiment(THEORY / f"{case}.yaml", list(overrides)))
    rows: list[dict[str, Any]] = []
    for spec in plan.specs:
        rows.extend(_rows(spec))
    return pd.DataFrame(rows)


def _rows(spec: RunSpec) -> list[dict[str, Any]]:
    result = simulate(spec)
    assert result.status == "ok", result.error
    times, values = result.timeseries["in_system"]
    base = {"policy": spec.policy, "seed": spec.seed}
    rows = [{**base, "metric": m, "scope": s, "value": v} for m, s, v in result.metrics]
    warmup = spec.config.get("warmup", 0.0)
    sampled = [v for t, v in zip(times, values, strict=True) if t > warmup]
    rows.append({**base, "metric": "in_system_sampled", "scope": "all", "value": np.mean(sampled)})
    return rows


def per_seed(frame: pd.DataFrame, metric: str, policy: str, scope: str = "all") -> np.ndarray:
    rows = frame[(frame.metric == metric) & (frame.scope == scope) & (frame.policy == policy)]
    return rows.sort_values("seed")["value"].to_numpy(dtype=float)


def check_expect_block(case: str, frame: pd.DataFrame) -> None:
    """The experiment file's own ``expect:`` entries pass on its own runs."""
    expect = load_experiment(THEORY / f"{case}.yaml").experiment.expect
    assert expect, f"{case}.yaml has no expect: block"
    failed = [f"{v.expectation}: {v.detail}" for v in evaluate(expect, frame) if not v.passed]
    assert not failed, "\n".join(failed)


# -- interval checks --------------------------------------------------------------------------


def control_variate_interval(
    y: np.ndarray, x: np.ndarray, x_mean: float, level: float = LEVEL
) -> tuple[float, float, float]:
    """Regression control-variate estimate of E[y] and its Student-t interval.

    theta = ybar - b (xbar - x_mean) with b the least-squares slope of y on x;
    its variance is s^2 (1/n + (xbar - x_mean)^2 / Sxx), s^2 the residual
    variance on n - 2 degrees of freedom (Lavenberg & Welch 1981).
    """
    n = len(y)
    sxx = float(((x - x.mean()) ** 2).sum())
    slope = float(((x - x.mean()) * (y - y.mean())).sum()) / sxx
    theta = float(y.mean() - slope * (x.mean() - x_mean))
    resid = y - y.mean() - slope * (x - x.mean())
    s2 = float((resid**2).sum()) / (n - 2)
    spread = math.sqrt(s2 * (1 / n + (x.mean() - x_mean) ** 2 / sxx))
    half = float(sps.t.ppf(0.5 + level / 2, n - 2)) * spread
    return theta, theta - half, theta + half


def assert_covers(
    what: str, interval: tuple[float, float, float], theory: float, allowance: float = 0.0
) -> None:
    """``theory`` lies in the interval widened by ``allowance`` (relative to ``theory``)."""
    mean, low, high = interval
    slack = allowance * abs(theory)
    assert low - slack <= theory <= high + slack, (
        f"{what}: theory {theory:.5g} outside 99 % CI [{low:.5g}, {high:.5g}] "
        f"(mean {mean:.5g}, allowance {slack:.3g})"
    )


def check_theory(
    frame: pd.DataFrame,
    policy: str,
    metric: str,
    theory: float,
    scope: str = "all",
    rho: float | None = None,
) -> None:
    """Plain 99 % t interval over seeds, and the control-variate one when ``rho`` is given."""
    y = per_seed(frame, metric, policy, scope)
    assert y.size >= 3 and np.isfinite(y).all(), f"{policy} {metric}[{scope}] per seed: {y}"
    assert_covers(f"{policy} {metric}[{scope}]", t_interval(y, LEVEL), theory)
    if rho is not None:
        u = per_seed(frame, "utilization", policy)
        cv = control_variate_interval(y, u, rho)
        assert_covers(f"{policy} {metric}[{scope}] (control variate)", cv, theory)


def check_little(case: str, frame: pd.DataFrame, policy: str) -> None:
    """L = lambda W (Little 1961), with L measured two ways.

    ``in_system_mean`` is the time-average number in system over the window,
    integrated from the task records; ``in_system_sampled`` reads the
    engine's own counter on a fixed grid, independently of the records that
    give W. lambda is the measured arrival rate (the sample-path form of the
    law, Stidham 1974), which removes the arrival-count noise both sides share.
    The 99 % t interval of L / (lambda W) over seeds must contain 1, up to
    the edge effect: tasks present when the window opens, and still in flight
    when it closes, count in L but not in W, which biases the ratio up by
    about W scv(S) / window. The sojourn-time scv is 1 for M/M/1 FCFS, 0.7
    for the M/M/4 case and at most 2.8 in the failure case, so the allowance
    is 5 W / window.
    """
    exp = load_experiment(THEORY / f"{case}.yaml").experiment
    assert exp.horizon is not None
    window = exp.horizon - exp.fixed_warmup
    w = per_seed(frame, "sojourn_mean", policy)
    lam = per_seed(frame, "arrived", policy) / window
    edge = 5 * float(w.mean()) / window
    for source in ("in_system_mean", "in_system_sampled"):
        ratio = per_seed(frame, source, policy) / (lam * w)
        assert_covers(f"{case} {policy} {source} / lambda W", t_interval(ratio, LEVEL), 1.0, edge)
    assert (per_seed(frame, "lost", policy) == 0).all()


# -- the cases ----------------------------------------------------------------------------------


def case(name: str, overrides: tuple[str, ...] = ()) -> pd.DataFrame:
    """Run one theory case and check its ``expect:`` block (skipped for overridden runs)."""
    frame = results(name, overrides)
    if not overrides:
        check_expect_block(name, frame)
    return frame


def test_mmc_central_fcfs_matches_erlang_c() -> None:
    """M/M/4, lambda 3.2, central FCFS: Wq = 0.7455, P(wait > 0) = 0.5964 (Erlang C)."""
    frame, m = case("mmc_erlang_c"), mmc(4, 3.2)
    check_theory(frame, "central", "wait_mean", m["wq"], rho=0.8)
    check_theory(frame, "central", "wait_prob", m["p_wait"], rho=0.8)
    check_theory(frame, "central", "sojourn_mean", m["w"], rho=0.8)
    check_theory(frame, "central", "in_system_mean", m["l"], rho=0.8)
    check_little("mmc_erlang_c", frame, "central")


def test_littles_law_under_failures_and_latency() -> None:
    """Little's law for central and push + jsq with failures, requeueing and latency."""
    frame = case("little_law")
    for policy in ("central", "push_jsq"):
        check_little("little_law", frame, policy)
        assert (per_seed(frame, "retries", policy) > 0).all()  # the failures did strike


def test_random_split_is_independent_mm1_queues() -> None:
    """Push + random over 20 agents at lambda 0.9 each: mean sojourn 1 / (1 - 0.9) = 10.

    Warm-up bias: from empty, the M/M/1 forward equations put the mean number
    in system over [600, 3000] within 0.3 % of its limit, well inside the
    interval, so no allowance is made.
    """
    frame = case("mm1_random_split")
    check_theory(frame, "random", "sojourn_mean", 10.0, rho=0.9)
    check_little("mm1_random_split", frame, "random")


@pytest.mark.slow
def test_random_split_is_independent_mm1_queues_precisely() -> None:
    """As above with 30 seeds of horizon 6000 (about a minute): a 99 % CI of about +-3 %."""
    frame = case("mm1_random_split", ("seeds=30", "horizon=6000", "warmup=1000"))
    check_theory(frame, "random", "sojourn_mean", 10.0, rho=0.9)


def test_power_of_two_near_mean_field() -> None:
    """Push + power of two, N = 100, lambda 0.9: mean sojourn a little above 2.6141.

    The mean-field value is exact only as N -> infinity; at finite N the mean
    sojourn is higher by O(1/N) (Gast 2017, "Expected values estimated via
    mean-field approximation are 1/N-accurate"). Twelve runs of horizon 1600
    (the slow variant) put N = 100 at 2.644, 99 % CI [2.631, 2.657] with the
    control variate: 1.1 % above the limit.
    So each interval must reach the limit or lie above it, by at most a
    one-sided 3 % allowance.
    """
    check_above_mean_field(case("power_of_d_mean_field"))


@pytest.mark.slow
def test_power_of_two_above_mean_field_precisely() -> None:
    """12 seeds of horizon 1600: the control-variate interval lies wholly above the limit."""
    frame = case("power_of_d_mean_field", ("seeds=12", "horizon=1600"))
    check_above_mean_field(frame)
    y, u = per_seed(frame, "sojourn_mean", "pod2"), per_seed(frame, "utilization", "pod2")
    mean, low, high = control_variate_interval(y, u, 0.9)
    assert low > power_of_d_mean_field(0.9, 2), f"{mean:.4f} [{low:.4f}, {high:.4f}]"


def check_above_mean_field(frame: pd.DataFrame, allowance: float = 0.03) -> None:
    theory = power_of_d_mean_field(0.9, 2)
    y, u = per_seed(frame, "sojourn_mean", "pod2"), per_seed(frame, "utilization", "pod2")
    for what, (mean, low, high) in (
        ("plain", t_interval(y, LEVEL)),
        ("control variate", control_variate_interval(y, u, 0.9)),
    ):
        shown = f"{what}: {mean:.4f} [{low:.4f}, {high:.4f}] vs mean field {theory:.4f}"
        assert high >= theory, f"{shown}: below the limit"
        assert low <= theory * (1 + allowance), f"{shown}: more than {allowance:.0%} above"


def test_routing_order_jsq_pod2_random() -> None:
    """jsq < power of two < random in mean sojourn, each step a significant paired difference."""
    frame = case("routing_order")
    for better, worse in (("jsq", "pod2"), ("pod2", "random")):
        (diff,) = paired_difference(
            frame, "sojourn_mean", "all", better, worse, keys=[], level=LEVEL
        )
        shown = f"{better} - {worse}: {diff.mean_diff:.3f} [{diff.ci_low:.3f}, {diff.ci_high:.3f}]"
        assert diff.n == 3
        assert diff.ci_high < 0, shown
        assert diff.p_value < 0.01, shown


def test_preemptive_priority_classes_match_erlang_c() -> None:
    """Central M/M/2 with two classes under preemptive priority (lambda 0.6 high, 1.0 low).

    High class: M/M/2 at 0.6 on its own (Erlang C). Low class: total number
    in system is that of M/M/2 at 1.6, so its sojourn is (L(1.6) - L(0.6)) / 1.0.
    """
    frame, high, total = case("priority_preemptive"), mmc(2, 0.6), mmc(2, 1.6)
    low_sojourn = (total["l"] - high["l"]) / 1.0
    check_theory(frame, "preemptive", "wait_mean", high["wq"], scope="priority=0", rho=0.8)
    check_theory(frame, "preemptive", "sojourn_mean", high["w"], scope="priority=0", rho=0.8)
    check_theory(frame, "preemptive", "sojourn_mean", low_sojourn, scope="priority=1", rho=0.8)
    check_theory(frame, "preemptive", "sojourn_mean", total["w"], rho=0.8)  # all: M/M/2


def test_srpt_matches_schrage_miller_and_beats_fcfs() -> None:
    """M/M/1 at 0.8: SRPT mean sojourn 2.3528 (Schrage-Miller); FCFS 5.0; SRPT < FCFS."""
    frame = case("srpt_mm1")
    check_theory(frame, "srpt", "sojourn_mean", srpt_mm1_sojourn(0.8), rho=0.8)
    check_theory(frame, "fcfs", "sojourn_mean", 1 / (1 - 0.8), rho=0.8)
    (diff,) = paired_difference(frame, "sojourn_mean", "all", "srpt", "fcfs", keys=[], level=LEVEL)
    assert diff.ci_high < 0 and diff.p_value < 0.01


def test_md1_matches_pollaczek_khinchine() -> None:
    """M/D/1 at 0.8 (push, one agent, constant work 1): Wq = 0.8 / (2 x 0.2) = 2.0."""
    frame, wq = case("md1_pollaczek_khinchine"), pollaczek_khinchine_wq(0.8, 1.0, 1.0)
    check_theory(frame, "push", "wait_mean", wq, rho=0.8)
    check_theory(frame, "push", "sojourn_mean", wq + 1.0, rho=0.8)


def test_mm1k_blocking_probability() -> None:
    """M/M/1/5 at rho 0.8: the rejection rate is P_K = 0.0888 and admitted tasks' mean
    sojourn 2.5631, whether the finite buffer is the coordinator's queue or the agent's."""
    frame, m = case("mm1k_blocking"), mmck(1, 5, 0.8)
    for policy in ("coordinator_limit", "agent_limit"):
        check_theory(frame, policy, "rejection_rate", m["p_block"])
        check_theory(frame, policy, "sojourn_mean", m["w"])
        assert (per_seed(frame, "lost", policy) == 0).all()
    # The same buffer in two places makes the same decisions on the same workload.
    same = per_seed(frame, "rejected", "coordinator_limit")
    assert (same == per_seed(frame, "rejected", "agent_limit")).all()


def test_mmck_blocking_and_erlang_b() -> None:
    """M/M/3/5 at lambda 2.7 (p_K = 0.1637, W = 1.2255) and M/M/3/3, Erlang B (0.3087)."""
    frame = case("mmck_blocking")
    m = mmck(3, 5, 2.7)
    check_theory(frame, "mm3k5", "rejection_rate", m["p_block"])
    check_theory(frame, "mm3k5", "sojourn_mean", m["w"])
    check_theory(frame, "erlang_b", "rejection_rate", mmck(3, 3, 2.7)["p_block"])
    check_theory(frame, "erlang_b", "wait_mean", 0.0)  # no waiting room: nobody waits
    for policy in ("mm3k5", "erlang_b"):
        assert (per_seed(frame, "lost", policy) == 0).all()


def test_mm1_patience_abandonment_share() -> None:
    """M/M/1+M at lambda 1.2, mean patience 2: 36.62 % of arrivals renege, counted both in
    ``reneged`` and in ``abandoned``, from the coordinator's queue or the agent's."""
    frame, share = case("mm1_patience"), mm1_patience_abandonment(1.2, 1.0, 0.5)
    for policy in ("central", "push"):
        reneged = per_seed(frame, "reneged", policy)
        arrived = per_seed(frame, "arrived", policy)
        assert_covers(f"{policy} reneged / arrived", t_interval(reneged / arrived, LEVEL), share)
        assert (per_seed(frame, "abandoned", policy) == reneged).all()
        assert (per_seed(frame, "lost", policy) == 0).all()


def test_every_theory_case_has_a_test() -> None:
    """Each file in experiments/theory/ is named by a test of this module."""
    source = Path(__file__).read_text()
    missing = [name for name in CASES if f'case("{name}"' not in source]
    assert not missing, f"theory files without a test: {missing}"

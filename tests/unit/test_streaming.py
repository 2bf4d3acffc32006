"""Streamed runs: a sketch's quantiles within its stated error, tallies equal to the columns'."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from kossim.analysis.sketch import ALPHA, Sketch
from kossim.runspec import RunSpec
from kossim.sim import simulate

ROOT = Path(__file__).resolve().parents[2]
QUANTILE_METRICS = {"sojourn_p50", "sojourn_p95", "sojourn_p99"}


def _samples(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if name == "exponential":
        return rng.exponential(1.0, n)
    if name == "lognormal":
        return rng.lognormal(0.0, 2.0, n)  # about six decades
    if name == "constant":
        return np.full(n, 2.5)
    if name == "hyperexponential":  # scv well above 1: two phases of means 0.1 and 10
        fast = rng.random(n) < 0.9
        return np.where(fast, rng.exponential(0.1, n), rng.exponential(10.0, n))
    if name == "uniform_with_zeros":
        x = rng.uniform(0.0, 5.0, n)
        x[: n // 10] = 0.0
        return x
    raise ValueError(name)


DISTRIBUTIONS = ("exponential", "lognormal", "constant", "hyperexponential", "uniform_with_zeros")


def _relative_errors(x: np.ndarray, sk: Sketch) -> tuple[float, float]:
    """Largest relative error over q = 0, 0.5, ..., 100 %: against the exact order
    statistic at rank floor(q (n - 1)) and against np.percentile's interpolation."""
    qs = np.linspace(0, 100, 201)
    est = np.array(sk.quantiles(qs))
    worst = []
    for method in ("lower", "linear"):
        exact = np.percentile(x, qs, method=method)
        if method == "lower":
            est_lower = np.array([sk._order(math.floor(q / 100 * (x.size - 1))) for q in qs])
            got = est_lower
        else:
            got = est
        scale = np.where(exact != 0, np.abs(exact), 1.0)
        assert np.all((exact != 0) | (got == 0)), "a zero is answered as zero"
        worst.append(float(np.max(np.abs(got - exact) / scale)))
    return worst[0], worst[1]


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_sketch_quantiles_within_alpha_of_exact(dist: str) -> None:
    rng = np.random.default_rng(11)
    x = _samples(dist, 200_000, rng)
    sk = Sketch()
    for chunk in np.array_split(x, 49):  # streamed in chunks, as a run does
        part = Sketch()
        part.add(chunk)
        sk.merge(part)
    lower, linear = _relative_errors(x, sk)
    print(f"{dist}: max relative error {lower:.5f} (order statistics), {linear:.5f} (interpolated)")
    assert lower <= ALPHA * (1 + 1e-9)
    assert linear <= ALPHA * (1 + 1e-9)
    assert sk.count == x.size
    positive = x[x > 0]
    if positive.size:  # memory: the range's buckets, not the values
        span = math.log(positive.max() / positive.min()) / math.log(sk.gamma)
        assert len(sk) <= span + 3


def test_sketch_one_add_equals_merged_chunks() -> None:
    x = np.random.default_rng(3).lognormal(0, 1, 10_000)
    whole, parts = Sketch(), Sketch()
    whole.add(x)
    for c in np.array_split(x, 7):
        p = Sketch()
        p.add(c)
        parts.merge(p)
    assert whole.quantiles(list(range(101))) == parts.quantiles(list(range(101)))


def test_sketch_rejects_nan_and_reports_nan_when_empty() -> None:
    with pytest.raises(ValueError):
        Sketch().add(np.array([1.0, float("nan")]))
    assert math.isnan(Sketch().quantile(50))


def _config(path: str, horizon: float) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / path).read_text())
    for key in ("sweep", "expect"):
        data.pop(key, None)
    data["horizon"] = min(float(data.get("horizon", horizon)), horizon)
    return data


CASES = (
    ("experiments/quickstart.yaml", "central"),  # types, priorities, deadlines
    ("experiments/quickstart.yaml", "pod2"),
    ("experiments/theory/mm1_patience.yaml", "push"),  # reneging
    ("experiments/protocols/delegation.yaml", "delegating"),  # hops
    ("experiments/routing/backpressure.yaml", "central_limited"),  # rejections
    ("experiments/theory/priority_preemptive.yaml", "preemptive"),
)


@pytest.mark.parametrize(("path", "policy"), CASES)
def test_streamed_run_matches_columns(path: str, policy: str) -> None:
    """Without --trace a run streams; with it, it keeps columns: counts equal, means equal
    up to the order of a sum, quantiles within the sketch's relative error."""
    data = _config(path, 1500.0)
    streamed = simulate(RunSpec.make(data, policy, (), 5))
    columns = simulate(RunSpec.make(data, policy, (), 5, trace=True))
    assert streamed.status == columns.status == "ok", streamed.error or columns.error
    got = {(m, s): v for m, s, v in streamed.metrics}
    want = {(m, s): v for m, s, v in columns.metrics}
    assert got.keys() == want.keys()
    assert [k[:2] for k in streamed.metrics] == [k[:2] for k in columns.metrics]
    for key, w in want.items():
        g = got[key]
        if math.isnan(w):
            assert math.isnan(g), key
        elif key[0] in QUANTILE_METRICS:
            assert abs(g - w) <= ALPHA * abs(w) + 1e-12, key
        else:
            assert g == pytest.approx(w, rel=1e-9, abs=1e-12), key
    s, c = streamed.distributions["sojourn"], columns.distributions["sojourn"]
    assert np.allclose(s, c, rtol=ALPHA, atol=1e-12, equal_nan=True)


def test_a_streamed_run_holds_no_task_rows() -> None:
    """Memory flat in run length: after 20,000 tasks the recorder keeps no column chunk,
    only tallies whose sketch has a bucket per 2 % of the range of sojourn times."""
    from kossim.sim import _build
    from kossim.sim.stream import StreamRecorder

    data = _config("experiments/quickstart.yaml", 1500.0)
    exp, world = _build(RunSpec.make(data, "central", (), 2))
    priorities = [t.priority for t in world.task_types]
    rec = StreamRecorder(priorities, 0, exp.fixed_warmup, lambda: world.measure_start)
    world.recorder = rec
    world.run()
    summary = rec.finish(world.live_tasks())
    assert world.arrived > 20_000
    assert all(not chunks for chunks in rec.chunks.values())
    assert not rec._buf
    assert summary.overall().n == world.arrived_measured  # finished and live, none lost
    assert len(summary.overall().sojourn) < 1_000

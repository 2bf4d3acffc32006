"""Same experiment, same bytes: on any executor, after an interruption, beside a failing run.

The tiny experiment (2 policies x 2 sweep points x 3 seeds, horizon 200) is
run once serially as the reference; every other way of running it must give
byte-identical ``metrics.csv`` and ``summary.csv``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pytest

from kossim.config.experiment import LoadedExperiment, load_experiment
from kossim.lab import RunOutcome, SweepInterrupted, run_experiment
from kossim.lab.executors import OnResult, RunFn, SerialExecutor
from kossim.lab.plan import make_plan
from kossim.runspec import RunSpec
from kossim.sim import simulate

TABLES = ("metrics.csv", "summary.csv", "metrics.parquet", "distributions.parquet")


def _tables(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in TABLES}


def _run(loaded: LoadedExperiment, out: Path, **options: object) -> RunOutcome:
    return run_experiment(loaded, out, progress=False, **options)  # type: ignore[arg-type]


@pytest.fixture
def tiny(write_experiment: Callable[..., Path]) -> LoadedExperiment:
    return load_experiment(write_experiment())


class CountingExecutor(SerialExecutor):
    """Serial, counting the runs it is given; optionally Ctrl-C after ``stop_after`` results."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.executed: list[str] = []

    def run(self, fn: RunFn, specs: Sequence[RunSpec], on_result: OnResult) -> None:
        def counted(result: object) -> None:
            on_result(result)  # type: ignore[arg-type]
            self.executed.append(result.run_id)  # type: ignore[attr-defined]
            if len(self.executed) == self.stop_after:
                raise KeyboardInterrupt

        super().run(fn, specs, counted)


def test_same_seed_same_numbers(tiny: LoadedExperiment) -> None:
    """Simulating one spec twice gives identical metrics, quantiles and time series."""
    spec = make_plan(tiny).specs[4]
    first, second = simulate(spec), simulate(spec)
    assert first.status == "ok"
    # repr is exact for floats and, unlike ==, equates NaN with NaN (no deadlines: NaN rate)
    assert repr(first.metrics) == repr(second.metrics)
    assert repr(first.distributions) == repr(second.distributions)
    assert repr(first.timeseries) == repr(second.timeseries)


def test_every_executor_writes_the_same_bytes(tiny: LoadedExperiment, tmp_path: Path) -> None:
    """Serial, two local processes and a two-worker Dask cluster agree byte for byte."""
    reference = _run(tiny, tmp_path / "serial", executor="serial")
    assert (reference.n_ok, reference.n_failed, reference.n_skipped) == (12, 0, 0)
    expected = _tables(tmp_path / "serial")
    local = _run(tiny, tmp_path / "local", executor="local", jobs=2)
    assert local.n_ok == 12
    assert _tables(tmp_path / "local") == expected
    dask = _run(tiny, tmp_path / "dask", executor="dask", jobs=2)
    assert dask.n_ok == 12
    assert _tables(tmp_path / "dask") == expected
    manifest = json.loads((tmp_path / "dask" / "manifest.json").read_text())
    assert (manifest["executor"], manifest["jobs"], manifest["n_failed"]) == ("dask", 2, 0)


def test_resume_runs_only_what_is_missing(tiny: LoadedExperiment, tmp_path: Path) -> None:
    """Ctrl-C after 5 runs, then --resume: 7 more runs, tables as if never interrupted."""
    _run(tiny, tmp_path / "whole", executor="serial")
    interrupted = CountingExecutor(stop_after=5)
    with pytest.raises(SweepInterrupted) as info:
        _run(tiny, tmp_path / "resumed", executor=interrupted)
    assert (info.value.n_stored, info.value.n_total) == (5, 12)
    assert list((tmp_path / "resumed").rglob("*.tmp")) == []
    assert not (tmp_path / "resumed" / "metrics.csv").exists()
    rest = CountingExecutor()
    outcome = _run(tiny, tmp_path / "resumed", executor=rest, resume=True)
    assert len(rest.executed) == 7 and not set(rest.executed) & set(interrupted.executed)
    assert (outcome.n_ok, outcome.n_failed, outcome.n_skipped) == (7, 0, 5)
    assert _tables(tmp_path / "resumed") == _tables(tmp_path / "whole")
    again = CountingExecutor()
    assert _run(tiny, tmp_path / "resumed", executor=again, resume=True).n_skipped == 12
    assert again.executed == []


def test_resume_reruns_deleted_and_failed_runs(tiny: LoadedExperiment, tmp_path: Path) -> None:
    """A run whose record is gone or failed is not complete; without --resume all run again."""
    first = _run(tiny, tmp_path, executor="serial")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    gone, failed = manifest["runs"][3]["run_id"], manifest["runs"][8]["run_id"]
    (tmp_path / "runs" / f"{gone}.json").unlink()
    record = json.loads((tmp_path / "runs" / f"{failed}.json").read_text())
    record["status"] = "failed"
    (tmp_path / "runs" / f"{failed}.json").write_text(json.dumps(record))
    resumed = CountingExecutor()
    _run(tiny, tmp_path, executor=resumed, resume=True)
    assert sorted(resumed.executed) == sorted([gone, failed])
    everything = CountingExecutor()
    assert _run(tiny, tmp_path, executor=everything).n_skipped == 0
    assert len(everything.executed) == len(first.plan.specs)


def test_a_failing_run_is_recorded_and_the_sweep_finishes(
    tiny_data: dict, write_experiment: Callable[..., Path], tmp_path: Path
) -> None:
    """A policy raising in one run fails that run only; its traceback reaches the manifest."""
    tiny_data["policies"][1] = {
        "name": "random",
        "dispatch": "push",
        "routing": {"id": "tests.plugins:Exploding", "seed": 1, "after": 5},
    }
    tiny_data["sweep"] = {"scenario.workload.arrivals.rate": [1.5]}
    loaded = load_experiment(write_experiment(tiny_data))
    outcome = _run(loaded, tmp_path, executor="serial")
    assert (outcome.n_ok, outcome.n_failed) == (5, 1)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    failed = [r for r in manifest["runs"] if r["status"] == "failed"]
    assert [(r["policy"], r["seed"]) for r in failed] == [("random", 1)]
    assert "RuntimeError: exploding routing went off" in failed[0]["error"]
    assert manifest["n_failed"] == 1
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    ran = set(metrics[["policy", "seed"]].itertuples(index=False, name=None))
    assert ran == {("central", 0), ("central", 1), ("central", 2), ("random", 0), ("random", 2)}

"""The results store: atomic files, what counts as done, and order-proof aggregation."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kossim.config.experiment import load_experiment
from kossim.lab.plan import Plan, make_plan
from kossim.lab.store import RunMeta, RunStore, atomic_write
from kossim.runspec import RunResult, RunSpec
from tests.plugins import quick_result

META = RunMeta("serial", 1, 0.5)


def _plan(write_experiment: Callable[..., Path], trace: bool = False, **fields: Any) -> Plan:
    return make_plan(load_experiment(write_experiment(**fields)), trace=trace)


def _failed(spec: RunSpec) -> RunResult:
    return RunResult(
        spec.run_id, spec.policy, spec.point, spec.seed, "failed", 0.1, error="Traceback: boom"
    )


def _traced(spec: RunSpec) -> RunResult:
    result = quick_result(spec)
    result.tasks = {"task": np.arange(3), "state": np.array(["done", "done", "lost"])}
    result.events = {"time": np.array([0.5]), "kind": np.array(["arrive"]), "task": np.array([0])}
    return result


def _leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tmp"))


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    """A reader sees the old bytes or the new ones; nothing else stays behind."""
    target = tmp_path / "a.json"
    atomic_write(target, b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert _leftovers(tmp_path) == []


def test_atomic_write_failing_midway_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error (or Ctrl-C) before the rename leaves the old file and removes the temporary."""
    target = tmp_path / "a.json"
    atomic_write(target, b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_open_drops_temporaries_of_a_killed_writer(tmp_path: Path) -> None:
    """A process killed mid-write leaves a temporary; the next sweep removes it."""
    store = RunStore(tmp_path).open()
    (store.runs / ".abc.parquet.123.deadbeef.tmp").write_bytes(b"partial")
    store.open()
    assert _leftovers(tmp_path) == []


def test_only_recorded_ok_runs_with_their_files_are_complete(
    tmp_path: Path, write_experiment: Callable[..., Path]
) -> None:
    """Done means: a readable ok record and the data files; failed and corrupt runs re-run."""
    specs = _plan(write_experiment).specs
    store = RunStore(tmp_path).open()
    ok, failed, truncated, no_record, no_data = specs[:5]
    for spec in (ok, truncated, no_data):
        store.put(quick_result(spec), ["scenario.workload.arrivals.rate"])
    store.put(_failed(failed), [])
    text = store.path(truncated.run_id).read_text()
    store.path(truncated.run_id).write_text(text[: len(text) // 2])  # torn write, no rename
    quick = quick_result(no_record)
    store.put(quick, [])
    store.path(no_record.run_id).unlink()  # killed between the data files and the record
    store.path(no_data.run_id, ".dist.parquet").unlink()
    ids = [s.run_id for s in specs]
    assert store.completed_ids(ids) == {ok.run_id}
    assert store.record(failed.run_id)["error"] == "Traceback: boom"  # type: ignore[index]
    assert _leftovers(tmp_path) == []


def test_a_traced_resume_needs_the_task_trace(
    tmp_path: Path, write_experiment: Callable[..., Path]
) -> None:
    """A run stored without a trace is not complete for a traced sweep."""
    plain, traced = _plan(write_experiment).specs[:2]
    store = RunStore(tmp_path).open()
    store.put(quick_result(plain), [])
    store.put(_traced(traced), [])
    ids = [plain.run_id, traced.run_id]
    assert store.completed_ids(ids) == set(ids)
    assert store.completed_ids(ids, traced=True) == {traced.run_id}


def test_aggregate_is_independent_of_completion_order(
    tmp_path: Path, write_experiment: Callable[..., Path]
) -> None:
    """Runs stored in any order give the same bytes, rows in plan order."""
    plan = _plan(write_experiment)
    outputs = []
    for name, order in (("forward", plan.specs), ("backward", plan.specs[::-1])):
        store = RunStore(tmp_path / name).open()
        for spec in order:
            store.put(quick_result(spec), plan.swept)
        store.aggregate(plan, META)
        outputs.append(
            [
                (store.root / f).read_bytes()
                for f in ("metrics.csv", "summary.csv", "metrics.parquet")
            ]
        )
    assert outputs[0] == outputs[1]
    metrics = pd.read_csv(tmp_path / "forward" / "metrics.csv")
    rate = "scenario.workload.arrivals.rate"
    assert list(metrics.columns) == ["policy", "seed", rate, "metric", "scope", "value"]
    keys = list(metrics[["policy", rate, "seed"]].itertuples(index=False, name=None))
    assert keys == [(p, r, s) for p in ("central", "random") for r in (1.5, 2.4) for s in (0, 1, 2)]


def test_swept_values_keep_their_yaml_type(
    tmp_path: Path, write_experiment: Callable[..., Path]
) -> None:
    """Integers stay integers, names stay text; an aggregate never guesses from one run."""
    sweep = {"scenario.agents.0.count": [2, 3], "policies.1.routing": ["random", "jsq"]}
    plan = _plan(write_experiment, sweep=sweep, seeds=1)
    store = RunStore(tmp_path).open()
    for spec in plan.specs[:3]:  # one run missing: column types still come from the plan
        store.put(quick_result(spec), plan.swept)
    store.aggregate(plan, META)
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    assert metrics["scenario.agents.0.count"].dtype == np.int64
    assert metrics["policies.1.routing"].tolist() == ["random", "jsq", "random"]
    assert metrics["seed"].dtype == np.int64
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["swept"] == list(sweep)
    assert [r["status"] for r in manifest["runs"]].count("missing") == 5


def test_manifest_lists_failed_runs_with_traceback(
    tmp_path: Path, write_experiment: Callable[..., Path]
) -> None:
    """The manifest says what ran where and how; a failed run keeps its traceback."""
    plan = _plan(write_experiment)
    store = RunStore(tmp_path).open()
    for spec in plan.specs:
        store.put(_failed(spec) if spec.seed == 2 else quick_result(spec), plan.swept)
    manifest = store.aggregate(plan, META)
    assert manifest == json.loads((tmp_path / "manifest.json").read_text())
    expected = {"name", "kossim_version", "git_commit", "config_hash", "config", "seeds"}
    assert expected <= set(manifest)
    assert manifest["policies"] == ["central", "random"]
    assert manifest["sweep"] == {"scenario.workload.arrivals.rate": [1.5, 2.4]}
    assert (manifest["n_runs"], manifest["n_failed"], manifest["executor"]) == (12, 4, "serial")
    failed = [r for r in manifest["runs"] if r["status"] == "failed"]
    assert {r["seed"] for r in failed} == {2} and failed[0]["error"] == "Traceback: boom"
    assert set(pd.read_csv(tmp_path / "metrics.csv")["seed"]) == {0, 1}


def test_stale_runs_of_other_configs_are_ignored(
    tmp_path: Path, write_experiment: Callable[..., Path]
) -> None:
    """Per-run files left by an earlier config never reach the tables."""
    old = _plan(write_experiment, horizon=150)
    new = _plan(write_experiment)
    store = RunStore(tmp_path).open()
    for spec in old.specs + new.specs:
        store.put(quick_result(spec), new.swept)
    store.aggregate(new, META)
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    assert len(metrics) == len(new.specs)  # one row per run from quick_result


def test_traced_aggregate_writes_tasks_and_an_untraced_one_removes_them(
    tmp_path: Path, write_experiment: Callable[..., Path]
) -> None:
    """tasks.parquet and events.parquet describe the current sweep's runs or do not exist."""
    traced = _plan(write_experiment, trace=True, seeds=1)
    store = RunStore(tmp_path).open()
    for spec in traced.specs:
        store.put(_traced(spec), traced.swept)
    store.aggregate(traced, META)
    tasks = pd.read_parquet(tmp_path / "tasks.parquet")
    assert len(tasks) == 3 * len(traced.specs)
    assert list(tasks.columns[:3]) == ["policy", "seed", "scenario.workload.arrivals.rate"]
    events = pd.read_parquet(tmp_path / "events.parquet")
    assert len(events) == len(traced.specs)
    assert list(events.columns[-3:]) == ["time", "kind", "task"]
    store.aggregate(_plan(write_experiment, seeds=1), META)
    assert not (tmp_path / "tasks.parquet").exists()
    assert not (tmp_path / "events.parquet").exists()


def test_distributions_and_timeseries_are_split_by_kind(
    tmp_path: Path, write_experiment: Callable[..., Path]
) -> None:
    """Quantiles run 0..1 in 101 steps; time series keep their sample times."""
    plan = _plan(write_experiment, seeds=1)
    store = RunStore(tmp_path).open()
    for spec in plan.specs:
        store.put(quick_result(spec), plan.swept)
    store.aggregate(plan, META)
    dist = pd.read_parquet(tmp_path / "distributions.parquet")
    series = pd.read_parquet(tmp_path / "timeseries.parquet")
    assert len(dist) == 101 * len(plan.specs)
    assert dist["quantile"].iloc[:101].tolist() == [i / 100 for i in range(101)]
    assert list(series.columns[-3:]) == ["variable", "time", "value"]
    assert series["time"].tolist() == [0.0, 1.0] * len(plan.specs)

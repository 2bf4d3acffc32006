"""``--trace`` streams: the task trace and the execution log go to Parquet a chunk at a
time, a traced run's figures are its untraced figures, and a traced sweep renames each
run's spill files into place and streams the sweep's trace tables."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from kossim.config.experiment import load_experiment
from kossim.lab import run_experiment
from kossim.runspec import RunSpec
from kossim.sim import World, simulate, simulate_world
from kossim.sim.eventlog import EVENT_COLUMNS, SpillingEventLog
from kossim.sim.recorder import FLUSH
from tests.unit.test_engine import config, constant

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments" / "quickstart.yaml"


def _latency_config(tasks: int) -> dict[str, Any]:
    """Three agents at 80 % load with random work, routed over a network with latency."""
    return config(
        tasks=tasks,
        interarrival=0.5,
        agents=[{"group": "w", "count": 3}],
        types=[{"type": "job", "work": {"dist": "exponential", "mean": 1.2}}],
        policy={"dispatch": "push", "routing": "jsq"},
        network={"latency": constant(0.05)},
    )


def test_a_traced_run_gives_the_figures_of_the_same_run_untraced() -> None:
    """Both stream their statistics: tracing adds files, never changes a number."""
    cfg = _latency_config(3 * FLUSH)
    plain = simulate(RunSpec.make(cfg, "p", (), 7))
    traced = simulate(RunSpec.make(cfg, "p", (), 7, trace=True))
    assert plain.status == traced.status == "ok", traced.error
    assert [(m, s, repr(v)) for m, s, v in traced.metrics] == [
        (m, s, repr(v)) for m, s, v in plain.metrics
    ]  # repr: NaN equals NaN
    assert traced.distributions == plain.distributions


def test_the_task_trace_holds_every_task_once_as_the_in_memory_columns_do() -> None:
    """Streamed in the order tasks ended (live ones last): the same rows as the columns a
    run keeps in memory, once sorted by task."""
    cfg = _latency_config(2 * FLUSH + 123)
    result = simulate(RunSpec.make(cfg, "p", (), 3, trace=True))
    assert result.tasks is not None
    world, cols = simulate_world(RunSpec.make(cfg, "p", (), 3))
    order = np.argsort(result.tasks["task"], kind="stable")
    assert result.tasks["task"][order].tolist() == cols["id"].tolist()
    names = np.array([a.name for a in world.agents] + [""], dtype=object)
    assert result.tasks["agent"][order].tolist() == names[cols["agent"]].tolist()
    assert np.array_equal(result.tasks["arrival"][order], cols["arrival"])
    ends = np.where(cols["end"] >= 0, cols["end"], np.nan)
    assert np.array_equal(result.tasks["end"][order], ends, equal_nan=True)
    assert result.tasks["measured"][order].tolist() == cols["measured"].tolist()
    # ended tasks come in the order they ended
    ended = result.tasks["end"][~np.isnan(result.tasks["end"])]
    assert np.all(np.diff(ended) >= 0)


def test_the_execution_log_spills_in_chunks_with_every_row_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A log written 50 rows at a time reads back as the log kept whole in memory."""
    monkeypatch.setattr(SpillingEventLog, "CHUNK", 50)
    cfg = _latency_config(200)
    result = simulate(RunSpec.make(cfg, "p", (), 5, trace=True))
    assert result.events is not None
    spec = RunSpec.make(cfg, "p", (), 5, trace=True)
    from kossim.config.models import Experiment

    exp = Experiment.model_validate(spec.config)
    world = World(exp, exp.policy("p"), 5, trace=True)
    world.run()
    assert world.kernel.log is not None
    whole = world.kernel.log.columns()
    for name in EVENT_COLUMNS:
        assert list(result.events[name]) == list(whole[name]), name
    assert len(whole["time"]) > 200  # several row groups were written
    assert pq.ParquetFile(pa_source(result.events)).metadata.num_row_groups > 3


def pa_source(trace: object) -> object:
    import pyarrow as pa

    path, data = trace.path, trace.data  # type: ignore[attr-defined]
    return path if path is not None else pa.BufferReader(data)


def test_a_trace_crosses_process_boundaries_as_its_parquet_bytes() -> None:
    result = simulate(RunSpec.make(_latency_config(100), "p", (), 1, trace=True))
    assert result.tasks is not None
    again = pickle.loads(pickle.dumps(result))
    assert again.tasks["task"].tolist() == result.tasks["task"].tolist()
    assert len(pickle.dumps(result.tasks)) < 20_000  # compressed columns, not objects


@pytest.mark.parametrize("executor", ["serial", "local"])
def test_a_traced_sweep_renames_spill_files_into_place(tmp_path: Path, executor: str) -> None:
    loaded = load_experiment(QUICKSTART, ["seeds=2", "horizon=200", "warmup=20"])
    outcome = run_experiment(
        loaded, tmp_path, executor=executor, jobs=2, trace=True, progress=False
    )
    assert outcome.n_failed == 0
    runs = tmp_path / "runs"
    assert not list(runs.glob(".*")), "no spill file is left behind"
    tasks = pd.read_parquet(tmp_path / "tasks.parquet")
    n_runs = len(loaded.experiment.policies) * 2
    assert list(tasks.columns[:2]) == ["policy", "seed"]
    per_run = tasks.groupby(["policy", "seed"])["task"].agg(["count", "nunique", "max"])
    assert len(per_run) == n_runs and (per_run["count"] > 1000).all()
    # every arrival of every run traced once
    assert (per_run["count"] == per_run["nunique"]).all()
    assert (per_run["count"] == per_run["max"] + 1).all()
    events = pd.read_parquet(tmp_path / "events.parquet")
    assert set(events.groupby(["policy", "seed"]).size().index) == set(per_run.index)
    # the store vouches for the renamed files by checksum: a resume reuses every run
    again = run_experiment(
        loaded, tmp_path, executor="serial", trace=True, resume=True, progress=False
    )
    assert again.n_skipped == n_runs


HEARTBEATS = QUICKSTART.parent / "protocols" / "heartbeats.yaml"


def test_the_report_reads_of_a_trace_only_what_it_shows(tmp_path: Path) -> None:
    """Narrowed reads pick the same task's life, the same failure marks and the same
    Gantt rows as reading the whole trace, and hold far fewer rows."""
    from kossim.report.execution import MARKS
    from kossim.report.load import _read_events, _read_tasks
    from kossim.report.plots_time import GANTT_WINDOW
    from kossim.trace import life_of

    loaded = load_experiment(
        HEARTBEATS, ["seeds=[3, 4]", "horizon=300", "warmup=10", "sweep={}", "expect=[]"]
    )
    run_experiment(loaded, tmp_path, executor="serial", trace=True, progress=False)
    manifest = {"seeds": [3, 4], "warmup": 10.0}
    whole = pd.read_parquet(tmp_path / "events.parquet")
    narrow = _read_events(tmp_path / "events.parquet", manifest)
    picked = life_of(whole)
    assert picked is not None and life_of(narrow) == picked
    policy, seed, task = picked
    mine = (whole["policy"] == policy) & (whole["seed"] == seed) & (whole["task"] == task)
    assert narrow["reason"].head(int(mine.sum())).tolist() == whole[mine]["reason"].tolist()
    marks = whole[whole["kind"].isin(list(MARKS)) & (whole["seed"] == 3)]
    assert len(marks) > 0
    got = narrow[narrow["kind"].isin(list(MARKS)) & (narrow["seed"] == 3)]
    assert got[["time", "kind", "actor"]].values.tolist() == (
        marks[["time", "kind", "actor"]].values.tolist()
    )
    assert len(narrow) < len(whole) / 20
    tasks = pd.read_parquet(tmp_path / "tasks.parquet")
    shown = _read_tasks(tmp_path / "tasks.parquet", manifest)
    window = tasks[(tasks["seed"] == 3) & (tasks["start"] < 10.0 + GANTT_WINDOW)]
    assert shown["task"].tolist() == window["task"].tolist()
    assert len(shown) < len(tasks) / 4

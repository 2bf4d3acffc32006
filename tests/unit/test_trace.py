"""The execution log: events.parquet with --trace, ``kossim trace``, and its report section."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kossim.config.experiment import load_experiment
from kossim.lab import run_experiment
from kossim.report import render_report
from kossim.runspec import RunSpec
from kossim.sim import simulate
from kossim.sim.eventlog import EVENT_COLUMNS
from tests.unit.test_cli import invoke
from tests.unit.test_engine import config, constant

HEARTBEATS = Path(__file__).resolve().parents[2] / "experiments" / "protocols" / "heartbeats.yaml"


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The heartbeats experiment, one seed, a short horizon, traced."""
    out = tmp_path_factory.mktemp("traced")
    loaded = load_experiment(
        HEARTBEATS, ["seeds=1", "horizon=150", "warmup=10", "sweep={}", "expect=[]"]
    )
    outcome = run_experiment(loaded, out, executor="serial", trace=True, progress=False)
    assert outcome.n_failed == 0
    return out


def test_a_traced_run_logs_every_message_and_decision_with_its_reason() -> None:
    """Exact log of one task: arrival, routing decision, dispatch, start, end, report."""
    cfg = config(tasks=1, network={"latency": constant(0.25)})
    result = simulate(RunSpec.make(cfg, "p", (), 0, trace=True))
    assert result.status == "ok", result.error
    assert result.events is not None
    rows = list(zip(*(result.events[c] for c in ("time", "kind", "actor", "reason")), strict=True))
    assert rows == [
        (1.0, "arrive", "world", "task 0 (job)"),
        (1.0, "route", "coordinator", "task 0 -> w-0: random, queue 0 of [0]"),
        (1.0, "send:task", "coordinator", "task from coordinator to w-0 (coordinator -> w-0)"),
        (1.25, "start", "w-0", "task 0 on w-0, attempt 1"),
        (1.75, "complete", "w-0", "task 0 completed, attempt 1"),
        (1.75, "send:done", "w-0", "done from w-0 to coordinator (w-0 -> coordinator)"),
    ]


def test_an_untraced_run_keeps_no_log() -> None:
    result = simulate(RunSpec.make(config(tasks=3), "p", (), 0))
    assert result.events is None


def test_events_parquet_holds_the_log_of_every_traced_run(traced: Path) -> None:
    events = pd.read_parquet(traced / "events.parquet")
    assert set(EVENT_COLUMNS) <= set(events.columns)
    assert set(events["policy"]) == {"oracle", "timeout", "phi"}
    kinds = set(events["kind"])
    assert {"arrive", "route", "start", "complete", "crash", "suspect"} <= kinds
    assert {"send:heartbeat", "send:task", "send:done"} <= kinds
    assert "send:heartbeat" not in set(events[events["policy"] == "oracle"]["kind"])


def test_kossim_trace_filters_by_policy_task_and_kind(traced: Path) -> None:
    result = invoke("trace", traced, "--policy", "timeout", "--task", "5")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines and all("task 5" in line for line in lines)
    kinds = [line.split()[1] for line in lines]
    assert kinds[:3] == ["arrive", "route", "send:task"]
    assert "complete" in kinds
    only = invoke("trace", traced, "--policy", "phi", "--kind", "suspect", "--limit", "3")
    assert only.exit_code == 0
    assert len(only.stdout.splitlines()) <= 3
    assert all("suspect" in line and "phi" in line for line in only.stdout.splitlines())
    assert "events shown" in only.stderr


def test_kossim_trace_without_a_log_says_how_to_record_one(tmp_path: Path) -> None:
    loaded = load_experiment(
        HEARTBEATS, ["seeds=1", "horizon=30", "warmup=1", "sweep={}", "expect=[]"]
    )
    run_experiment(loaded, tmp_path, executor="serial", progress=False)
    result = invoke("trace", tmp_path)
    assert result.exit_code == 2
    assert "run the experiment with --trace" in result.stderr


def test_the_report_shows_a_task_life_and_the_failure_timeline(traced: Path) -> None:
    path = render_report(traced)
    html = path.read_text()
    assert "Execution log" in html
    assert "Life of task" in html
    assert (traced / "plots" / "timeline.png").is_file()

"""Batched durability: run files reach the disk in groups, and what a crash leaves is redone.

A sweep no longer fsyncs each run file; :class:`kossim.lab.durable.SyncBatch`
syncs the files of many runs at once. These tests pin when a batch is synced
(every K runs, T seconds after the oldest unsynced run, at the end, on an
interruption), that storing a run forces nothing to disk by itself, and that
after a ``kill -9`` in the middle of a batch, with the unsynced files torn as a
power loss could leave them, ``--resume`` redoes exactly the runs whose files
are not intact and gives the tables of an uninterrupted sweep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import kossim.lab.durable as durable
from kossim.config.experiment import load_experiment
from kossim.lab import run_experiment
from kossim.lab.durable import SyncBatch, sync_files
from kossim.lab.plan import make_plan
from kossim.lab.store import RunMeta, RunStore
from tests.plugins import quick_result

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("metrics.csv", "metrics.parquet", "summary.csv", "distributions.parquet")


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[list[Path]]:
    """The batches ``sync_files`` was called with (nothing is forced to disk)."""
    calls: list[list[Path]] = []
    monkeypatch.setattr(durable, "sync_files", lambda folder, paths: calls.append(list(paths)))
    return calls


def test_a_batch_is_synced_every_k_runs_and_on_demand(
    tmp_path: Path, synced: list[list[Path]]
) -> None:
    batch = SyncBatch(tmp_path, every_runs=3, every_seconds=60.0)
    for i in range(7):
        batch.add([tmp_path / f"{i}.parquet", tmp_path / f"{i}.json"])
    assert [len(paths) for paths in synced] == [6, 6]
    assert batch.unsynced_runs == 1
    batch.sync()
    batch.sync()  # nothing pending: no call
    assert [len(paths) for paths in synced] == [6, 6, 2]
    assert (batch.syncs, batch.unsynced_runs) == (3, 0)


def test_a_run_waits_at_most_every_seconds_for_its_sync(
    tmp_path: Path, synced: list[list[Path]]
) -> None:
    """A pause between results does not leave the last runs unsynced."""
    batch = SyncBatch(tmp_path, every_runs=100, every_seconds=0.05)
    batch.add([tmp_path / "a.json"])
    deadline = time.monotonic() + 10
    while not synced and time.monotonic() < deadline:
        time.sleep(0.01)
    assert synced == [[tmp_path / "a.json"]]
    assert batch.unsynced_runs == 0


def test_a_failed_sync_keeps_the_files_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(folder: Path, paths: list[Path]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(durable, "sync_files", full)
    batch = SyncBatch(tmp_path, every_runs=100, every_seconds=60.0)
    batch.add([tmp_path / "a.json"])
    with pytest.raises(OSError, match="No space"):
        batch.sync()
    assert batch.unsynced_runs == 1


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_sync_files_forces_real_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: bool
) -> None:
    """One syncfs where the platform has it, else an fsync per file and one for the folder
    (a file removed meanwhile is skipped)."""
    fsynced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: fsynced.append(fd) or real_fsync(fd))
    if not syncfs:
        monkeypatch.setattr(durable, "_load_syncfs", lambda: False)
    elif not durable._load_syncfs():
        pytest.skip("no syncfs(2) here")
    paths = [tmp_path / f"{i}.bin" for i in range(3)]
    for path in paths:
        path.write_bytes(b"x" * 100)
    sync_files(tmp_path, [*paths, tmp_path / "gone.bin"])
    assert len(fsynced) == (0 if syncfs else 4)


def test_storing_runs_forces_nothing_to_disk_until_the_batch_is_synced(
    tmp_path: Path,
    write_experiment: Callable[..., Path],
    synced: list[list[Path]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No fsync per run file; the store's sync (the sweep's end) syncs every run's files,
    and aggregating syncs what is pending first."""
    fsynced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: fsynced.append(fd) or real_fsync(fd))
    specs = make_plan(load_experiment(write_experiment())).specs
    store = RunStore(tmp_path).open()
    for spec in specs[:5]:
        store.put(quick_result(spec), [])
    assert fsynced == [] and synced == []
    store.sync()
    assert sorted(p.name for p in synced[0]) == sorted(
        f"{spec.run_id}{suffix}"
        for spec in specs[:5]
        for suffix in (".json", ".parquet", ".dist.parquet")
    )
    store.put(quick_result(specs[5]), [])
    store.aggregate(make_plan(load_experiment(write_experiment())), RunMeta("serial", 1, 0.0))
    assert len(synced) == 2 and store.batch.unsynced_runs == 0


def test_storing_a_run_again_replaces_its_files_and_tables(
    tmp_path: Path, write_experiment: Callable[..., Path]
) -> None:
    """A run stored twice (a sweep without --resume) leaves one set of files, no temporary,
    and aggregation of the tables it kept equals aggregation from the files alone."""
    path = write_experiment()
    plan = make_plan(load_experiment(path))
    store = RunStore(tmp_path / "a").open()
    for _ in range(2):
        for spec in plan.specs:
            store.put(quick_result(spec), plan.swept)
    store.aggregate(plan, RunMeta("serial", 1, 0.0))
    fresh = {name: (tmp_path / "a" / name).read_bytes() for name in TABLES}
    RunStore(tmp_path / "a").open().aggregate(plan, RunMeta("serial", 1, 0.0))
    assert {name: (tmp_path / "a" / name).read_bytes() for name in TABLES} == fresh
    assert not list((tmp_path / "a").rglob("*.tmp"))
    assert len(list((tmp_path / "a" / "runs").glob("*.json"))) == len(plan.specs)


N_RUNS = 40
SLEEPY = f"""\
name: sleepy
seeds: {N_RUNS}
horizon: 60
warmup: 5
scenario:
  agents:
    - {{group: worker, count: 3, speed: 1.0, capacity: 1}}
  workload:
    arrivals: {{process: poisson, rate: 2.0}}
    tasks:
      - {{type: job, work: {{dist: exponential, mean: 1.0}}}}
policies:
  - {{name: sleepy, dispatch: push, routing: {{id: "tests.plugins:Sleepy", pause: 0.001}}}}
"""
"""40 runs of about a tenth of a second each, nearly all of it asleep: results land
faster than the batch's one-second sync, so a kill falls inside a batch."""


@pytest.mark.skipif(sys.platform != "linux", reason="process groups and kill -9: Linux")
def test_kill_9_mid_batch_then_resume_redoes_only_runs_not_intact(tmp_path: Path) -> None:
    """Kill -9 the sweep once some runs are stored; then tear the newest record and cut
    another run's data file, as a power loss before their batch's sync could leave them.
    ``--resume`` never reads the torn record as done: it redoes exactly the runs without
    an intact record, and the tables equal those of an uninterrupted sweep."""
    experiment = tmp_path / "sleepy.yaml"
    experiment.write_text(SLEEPY)
    out = tmp_path / "killed"
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path}
    args = [sys.executable, "-m", "kossim", "run", str(experiment), "--out", str(out)]
    proc = subprocess.Popen(
        [*args, "--jobs", "2", "--no-report", "--no-progress"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(list((out / "runs").glob("*.json"))) < 6:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the sweep stored too few runs"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    records = sorted((out / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    assert len(records) < N_RUNS, "the sweep ended before the kill"
    torn, cut = records[-1], records[-2]
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
    cut_data = cut.with_suffix(".parquet")
    cut_data.write_bytes(cut_data.read_bytes()[:10])
    store = RunStore(out)
    intact = store.completed_ids(path.stem for path in records)
    assert torn.stem not in intact and cut.stem not in intact
    assert len(intact) == len(records) - 2

    resumed = run_experiment(
        load_experiment(experiment), out, executor="serial", resume=True, progress=False
    )
    assert (resumed.n_skipped, resumed.n_ok, resumed.n_failed) == (
        len(intact),
        N_RUNS - len(intact),
        0,
    )
    clean = run_experiment(
        load_experiment(experiment), tmp_path / "clean", executor="serial", progress=False
    )
    assert clean.n_ok == N_RUNS
    for name in TABLES:
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_ok"] == N_RUNS

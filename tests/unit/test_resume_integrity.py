"""``--resume`` reuses only runs made from the same inputs, with their files intact.

A run's key covers the contents of its data files and the source of its user
components; its record holds a checksum of each of its files. So a changed
data file or component reruns the runs that read it, and a run file cut short,
edited or swapped reruns that run, giving the tables of an undamaged sweep.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from kossim.config.experiment import load_experiment
from kossim.lab import RunOutcome, run_experiment
from kossim.lab.plan import make_plan
from kossim.lab.store import RunMeta, RunStore

TABLES = ("metrics.csv", "metrics.parquet", "summary.csv", "distributions.parquet")
ROUTER = """
from policies.routing import Random


class Router(Random):
    kind = "routing"
    id = "kossim_test_router"
    description = "random routing from a user module"
"""


def _experiment(tmp_path: Path, **changes: Any) -> Path:
    data: dict[str, Any] = {
        "name": "integrity",
        "seeds": 2,
        "horizon": 60,
        "warmup": 5,
        "scenario": {
            "agents": [{"group": "worker", "count": 2}],
            "workload": {
                "arrivals": {"process": "poisson", "rate": 1.2},
                "tasks": [{"type": "job", "work": {"dist": "empirical", "file": "work.csv"}}],
            },
        },
        "policies": [
            {"name": "central", "dispatch": "central"},
            {"name": "random", "dispatch": "push", "routing": "random"},
        ],
    }
    data.update(changes)
    path = tmp_path / "integrity.yaml"
    path.write_text(json.dumps(data))
    if not (tmp_path / "work.csv").exists():
        (tmp_path / "work.csv").write_text("work\n0.5\n1.0\n1.5\n")
    return path


def _run(path: Path, out: Path, resume: bool = True) -> RunOutcome:
    loaded = load_experiment(path)
    return run_experiment(loaded, out, executor="serial", progress=False, resume=resume)


def _tables(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in TABLES}


def test_a_changed_data_file_reruns_the_runs_that_read_it(tmp_path: Path) -> None:
    """Same path, new contents: nothing is resumed, and the numbers change."""
    path, out = _experiment(tmp_path), tmp_path / "out"
    first = _run(path, out)
    assert (first.n_ok, first.n_skipped) == (4, 0)
    assert _run(path, out).n_skipped == 4
    before = (out / "summary.csv").read_bytes()
    (tmp_path / "work.csv").write_text("work\n2.0\n3.0\n")
    again = _run(path, out)
    assert (again.n_ok, again.n_skipped) == (4, 0)
    assert (out / "summary.csv").read_bytes() != before
    assert {s.run_id for s in again.plan.specs}.isdisjoint(s.run_id for s in first.plan.specs)


def test_a_changed_user_component_reruns_its_runs_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editing the module of ``module:Class`` reruns the policy that uses it, not the others."""
    (tmp_path / "kossim_test_user_router.py").write_text(ROUTER)
    monkeypatch.syspath_prepend(str(tmp_path))
    policies = [
        {"name": "central", "dispatch": "central"},
        {"name": "user", "dispatch": "push", "routing": "kossim_test_user_router:Router"},
    ]
    path, out = _experiment(tmp_path, policies=policies), tmp_path / "out"
    assert _run(path, out).n_ok == 4
    (tmp_path / "kossim_test_user_router.py").write_text(ROUTER + "\n# a comment changes it\n")
    again = _run(path, out)
    assert (again.n_ok, again.n_skipped) == (2, 2)


def test_damaged_run_files_rerun_and_give_the_undamaged_tables(tmp_path: Path) -> None:
    """Cut one run's metrics short, swap two others': resume reruns exactly those three."""
    path = _experiment(tmp_path)
    clean, damaged = tmp_path / "clean", tmp_path / "damaged"
    outcome = _run(path, clean)
    shutil.copytree(clean, damaged)
    ids = [spec.run_id for spec in outcome.plan.specs]
    runs = damaged / "runs"
    cut = runs / f"{ids[0]}.parquet"
    cut.write_bytes(cut.read_bytes()[:50])
    a, b = runs / f"{ids[1]}.parquet", runs / f"{ids[2]}.parquet"
    a_bytes = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(a_bytes)
    resumed = _run(path, damaged)
    assert (resumed.n_ok, resumed.n_skipped) == (3, 1)
    assert _tables(damaged) == _tables(clean)


def test_aggregation_leaves_out_and_names_damaged_runs(tmp_path: Path) -> None:
    """A folder damaged after the sweep aggregates without a traceback; the manifest says."""
    path, out = _experiment(tmp_path), tmp_path / "out"
    outcome = _run(path, out)
    first, second = (spec.run_id for spec in outcome.plan.specs[:2])
    (out / "runs" / f"{first}.parquet").write_bytes(b"PAR1 not really")
    (out / "runs" / f"{second}.dist.parquet").unlink()
    plan = make_plan(load_experiment(path))
    manifest = RunStore(out).open().aggregate(plan, RunMeta("serial", 1, 0.0))
    damaged = [run["run_id"] for run in manifest["runs"] if run["status"] == "damaged"]
    assert damaged == [first, second]
    assert (manifest["n_ok"], manifest["n_damaged"]) == (2, 2)
    assert "--resume" in manifest["runs"][0]["error"]
    metrics = (out / "metrics.csv").read_text().splitlines()
    assert {line.split(",")[0] for line in metrics[1:]} == {"random"}  # both central runs out


def test_an_edited_record_is_damaged_not_a_crash(tmp_path: Path) -> None:
    """A record whose checksums or counters were edited into nonsense: left out, named."""
    path, out = _experiment(tmp_path), tmp_path / "out"
    outcome = _run(path, out)
    run_id = outcome.plan.specs[-1].run_id
    record_path = out / "runs" / f"{run_id}.json"
    record = json.loads(record_path.read_text())
    record.update(files="none", counters=[1, 2])
    record_path.write_text(json.dumps(record))
    plan = make_plan(load_experiment(path))
    manifest = RunStore(out).open().aggregate(plan, RunMeta("serial", 1, 0.0))
    assert [r["status"] for r in manifest["runs"]] == ["ok", "ok", "ok", "damaged"]
    resumed = _run(path, out)
    assert (resumed.n_ok, resumed.n_skipped) == (1, 3)

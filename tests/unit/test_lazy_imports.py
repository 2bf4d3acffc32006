"""``kossim`` imports only what a command uses: help needs no pandas or scipy, a run
without a report needs neither scipy.stats nor matplotlib, and Dask only for
``--executor dask``. Each check runs a fresh interpreter and lists what it loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = """\
name: tiny
seeds: 2
tasks: 50
scenario:
  agents:
    - {group: worker, count: 2}
  workload:
    arrivals: {process: poisson, rate: 1.0}
    tasks:
      - {type: job, work: {dist: exponential, mean: 1.0}}
policies:
  - {name: central, dispatch: central, queue: fcfs}
"""


def _modules_after(argv: list[str], cwd: Path) -> set[str]:
    """Top-level and heavy submodule names loaded by ``kossim argv`` in a new interpreter."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from kossim.cli import main
        sys.argv = ["kossim", *{argv!r}]
        try:
            main()
        except SystemExit:
            pass
        print("MODULES=" + json.dumps(sorted(sys.modules)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


def test_help_loads_no_analysis_stack(tmp_path: Path) -> None:
    loaded = _modules_after(["run", "--help"], tmp_path)
    heavy = {"pandas", "scipy", "matplotlib", "pyarrow", "dask", "distributed", "simpy"}
    assert not heavy & loaded, sorted(heavy & loaded)


def test_a_run_without_report_loads_no_plotting_nor_scipy_stats(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    argv = ["run", "tiny.yaml", "--executor", "serial", "--no-report", "--no-progress"]
    loaded = _modules_after(argv, tmp_path)
    assert "kossim.lab.store" in loaded  # it did run
    unwanted = {"scipy.stats", "matplotlib", "dask", "distributed"}
    assert not unwanted & loaded, sorted(unwanted & loaded)


SWEPT = (
    TINY.replace("policies:\n", "policies:\n  - {name: jsq, dispatch: push, routing: jsq}\n")
    + """\
sweep:
  scenario.workload.arrivals.rate: [1.0, 2.5]
expect:
  - {metric: sojourn_mean, better: central, than: jsq}
  - {metric: lost, max: 0}
  - {metric: lost, max: 0, on: every_seed}
  - {metric: utilization, value: 0.5, abs: 1.0}
  - {metric: throughput, growth: {scenario.workload.arrivals.rate: [1.0, 2.5]}, min_ratio: 0}
"""
)


def test_a_run_without_report_loads_no_pandas(tmp_path: Path) -> None:
    """Storing, aggregating and summarising a sweep, the overload checks and the
    expectations (which read the tables back) use pyarrow alone, on the serial and the
    local executor; a resumed sweep reads its runs' files back without pandas too."""
    (tmp_path / "tiny.yaml").write_text(SWEPT)
    for executor in ("serial", "local"):
        argv = ["run", "tiny.yaml", "--executor", executor, "--no-report", "--no-progress"]
        argv += ["--out", f"out-{executor}"]
        loaded = _modules_after(argv, tmp_path)
        assert "kossim.lab.store" in loaded and "pyarrow" in loaded  # it did run and store
        assert "pandas" not in loaded, executor
        assert (tmp_path / f"out-{executor}" / "summary.csv").exists()
        verdicts = json.loads((tmp_path / f"out-{executor}" / "expectations.json").read_text())
        assert len(verdicts["expectations"]) == 5
    (tmp_path / "out-serial" / "summary.csv").unlink()
    argv = ["run", "tiny.yaml", "--executor", "serial", "--no-report", "--no-progress"]
    loaded = _modules_after([*argv, "--out", "out-serial", "--resume"], tmp_path)
    assert "pandas" not in loaded
    assert (tmp_path / "out-serial" / "summary.csv").exists()


def test_a_run_with_report_still_loads_pandas_for_it(tmp_path: Path) -> None:
    """The report reads the results with pandas: pyarrow takes it up again after the
    pandas-free run (its figures and tables render from pandas frames)."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    argv = ["run", "tiny.yaml", "--executor", "serial", "--no-progress", "--out", "out"]
    loaded = _modules_after(argv, tmp_path)
    assert "pandas" in loaded
    assert (tmp_path / "out" / "report.html").exists()

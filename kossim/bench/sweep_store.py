"""``kossim bench --sweep``, second part: a whole sweep of short runs against its simulation.

A sweep of ``runs`` runs of about 3 ms each (one policy, one seed per run)
goes through :func:`kossim.lab.run_experiment` exactly as ``kossim run`` does
(executor, storing every run, the batched syncs, aggregation), per executor:
serial, local processes and, when ``dask.distributed`` is installed, a Dask
LocalCluster (its start-up included, as a user pays it). The figure of merit,
the issue's acceptance test, is

    ratio = sweep wall time / (summed simulation time / workers)

where the sweep wall time runs from the first dispatch to the last run
stored (aggregation is printed apart) and the simulation time is each run's
own, measured where it ran. At most 2 on local processes is the target; 1 is
the floor. Workers that share cores with other work simulate more slowly, which
flatters the ratio, so it is also given against the serial sweep's simulation
time ("vs serial sim"). Medians over ``repeat`` sweeps, and the range of the ratio.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

__all__ = ["StoreReport", "SweepCost", "print_store_bench", "run_store_bench", "tiny_experiment"]

TASKS_PER_RUN = 100
"""Tasks per run: about 3 ms of simulation on a 2020s core."""


def tiny_experiment(runs: int, tasks: int = TASKS_PER_RUN) -> str:
    """The YAML text of the bench sweep: ``runs`` seeds of a small M/M/4 system."""
    return f"""\
name: sweep-bench
seeds: {runs}
tasks: {tasks}
scenario:
  agents:
    - {{group: worker, count: 4}}
  workload:
    arrivals: {{process: poisson, rate: 3.0}}
    tasks:
      - {{type: job, work: {{dist: exponential, mean: 1.0}}}}
policies:
  - {{name: central, dispatch: central, queue: fcfs}}
"""


@dataclass
class SweepCost:
    """One executor's sweeps; lists hold one figure per repetition."""

    executor: str
    workers: int
    sweep_seconds: list[float] = field(default_factory=list)
    """First dispatch to last run stored (``RunOutcome.wall_time``)."""
    sim_seconds: list[float] = field(default_factory=list)
    """Summed simulation time of the sweep's runs."""
    aggregate_seconds: list[float] = field(default_factory=list)
    """Everything else ``run_experiment`` did: aggregation, the overload check."""
    parent_cpu_seconds: list[float] = field(default_factory=list)
    """CPU time of the sweep process (storing, aggregating; all of it when serial)."""

    def overhead_ms(self, runs: int) -> list[float]:
        """(sweep wall - summed simulation / workers) / runs, in ms: what a run costs beyond
        its simulation."""
        pairs = zip(self.sweep_seconds, self.sim_seconds, strict=True)
        return [(wall - sim / self.workers) / runs * 1e3 for wall, sim in pairs]

    def ratios(self) -> list[float]:
        pairs = zip(self.sweep_seconds, self.sim_seconds, strict=True)
        return [wall / (sim / self.workers) for wall, sim in pairs]


@dataclass
class StoreReport:
    runs: int
    repeat: int
    costs: list[SweepCost]
    skipped: dict[str, str]
    """Executors not measured, and why."""


def _sweep(folder: Path, experiment: Path, executor: str, jobs: int | None) -> dict[str, float]:
    from kossim.config.experiment import load_experiment
    from kossim.lab import run_experiment

    loaded = load_experiment(experiment)
    cpu, wall = time.process_time(), time.perf_counter()
    outcome = run_experiment(
        loaded, folder, executor=executor, jobs=jobs, progress=False, announce=False
    )
    total, cpu = time.perf_counter() - wall, time.process_time() - cpu
    manifest = json.loads((folder / "manifest.json").read_text())
    if outcome.n_failed or outcome.n_ok != len(manifest["runs"]):
        raise RuntimeError(f"a bench run failed under {executor}")
    sim = sum(float(run["wall_time"]) for run in manifest["runs"])
    return {"sweep": outcome.wall_time, "sim": sim, "rest": total - outcome.wall_time, "cpu": cpu}


def run_store_bench(
    runs: int = 1000,
    repeat: int = 3,
    executors: tuple[str, ...] = ("serial", "local", "dask"),
    console: Console | None = None,
) -> StoreReport:
    """Sweep ``runs`` short runs ``repeat`` times on each executor, each into a new folder."""
    from kossim.lab.executors import default_jobs

    say = (console or Console(stderr=True)).print
    jobs = default_jobs()
    skipped: dict[str, str] = {}
    if "dask" in executors:
        try:
            import distributed  # noqa: F401
        except ImportError:
            skipped["dask"] = "dask.distributed is not installed"
    measured = [e for e in executors if e not in skipped]
    costs = [SweepCost(e, 1 if e == "serial" else jobs) for e in measured]
    say(f"[dim]sweep bench: {runs} runs of {TASKS_PER_RUN} tasks, {repeat}x, {jobs} workers[/]")
    with tempfile.TemporaryDirectory(prefix="kossim-bench-") as tmp:
        experiment = Path(tmp) / "sweep-bench.yaml"
        experiment.write_text(tiny_experiment(runs))
        _sweep(Path(tmp) / "warm", experiment, "local", jobs)  # the fork server starts once
        for r in range(repeat):
            for cost in costs:  # interleaved, so a load spike spreads over executors
                jobs_arg = None if cost.executor == "serial" else cost.workers
                got = _sweep(
                    Path(tmp) / f"{cost.executor}-{r}", experiment, cost.executor, jobs_arg
                )
                cost.sweep_seconds.append(got["sweep"])
                cost.sim_seconds.append(got["sim"])
                cost.aggregate_seconds.append(got["rest"])
                cost.parent_cpu_seconds.append(got["cpu"])
                say(f"[dim]  {r + 1}/{repeat} {cost.executor}: {got['sweep']:.2f} s[/]")
    return StoreReport(runs, repeat, costs, skipped)


def _range(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def print_store_bench(report: StoreReport, console: Console | None = None) -> None:
    """The acceptance figure per executor: sweep wall time against simulation time."""
    out = console or Console()
    table = Table(
        "executor", "jobs", "sweep s", "sim ms/run", "overhead ms/run", "ratio", "range",
        "vs serial", "aggr. s", "CPU s", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0),
    )  # fmt: skip
    serial = [c for c in report.costs if c.executor == "serial"]
    base = statistics.median(serial[0].sim_seconds) if serial else math.nan
    med = statistics.median
    for cost in report.costs:
        ratios = cost.ratios()
        table.add_row(
            cost.executor,
            str(cost.workers),
            f"{med(cost.sweep_seconds):.2f}",
            f"{med(cost.sim_seconds) / report.runs * 1e3:.2f}",
            f"{med(cost.overhead_ms(report.runs)):.2f}",
            f"{med(ratios):.2f}",
            _range(ratios),
            f"{med(cost.sweep_seconds) / (base / cost.workers):.2f}",
            f"{med(cost.aggregate_seconds):.2f}",
            f"{med(cost.parent_cpu_seconds):.2f}",
        )
    out.print(
        f"[bold]sweep of {report.runs} short runs[/], as kossim run does it (storing included): "
        "overhead = (sweep wall - summed simulation / workers) / runs; "
        "ratio = sweep wall / (summed simulation / workers), target at most 2 on local "
        "processes; vs serial: the same against the serial sweep's simulation time; "
        "aggr.: aggregation after the sweep; CPU: of the sweep process; "
        f"medians of {report.repeat}"
    )
    out.print(table)
    for executor, why in report.skipped.items():
        out.print(f"{executor}: not measured ({why})", highlight=False)

"""``kossim bench --sweep``: what the sweep machinery costs per run.

Trivially short runs (10 tasks) go serially, through the local-process
executor with one worker (the dispatch cost alone) and with all workers (what
a sweep gets), at two run counts, so the per-run overhead and the pool
start-up can be told apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from kossim.bench.mmc import _fmt_load, _load, _timed, bench_config
from kossim.runspec import RunResult, RunSpec
from kossim.sim import simulate

__all__ = ["SweepReport", "print_sweep_bench", "run_sweep_bench"]


@dataclass
class SweepReport:
    """Wall time of short runs: serial, the local executor with one worker (dispatch cost
    alone) and with ``jobs`` workers (what a sweep gets), at two run counts."""

    runs: list[int]
    serial_seconds: list[float]
    one_seconds: list[float]
    many_seconds: list[float]
    first_seconds: float
    """The first local sweep, which may also start the fork server."""
    jobs: int
    repeat: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    def overhead_ms(self, one: bool = True) -> list[float]:
        """(local - serial) / runs in ms at each run count, pool start-up included."""
        local = self.one_seconds if one else self.many_seconds
        pairs = zip(self.runs, self.serial_seconds, local, strict=True)
        return [(loc - ser) / n * 1e3 for n, ser, loc in pairs]

    def marginal_ms(self, one: bool = True) -> float:
        """Extra ms per additional run between the two run counts: start-up excluded."""
        (n0, n1), (s0, s1) = self.runs, self.serial_seconds
        l0, l1 = self.one_seconds if one else self.many_seconds
        return ((l1 - l0) - (s1 - s0)) / (n1 - n0) * 1e3


def run_sweep_bench(
    quick: bool = False, repeat: int = 3, console: Console | None = None
) -> SweepReport:
    """Time trivially short runs (10 tasks each) through the local executor and serially."""
    from kossim.lab.executors import LocalExecutor, SerialExecutor, default_jobs

    say = (console or Console(stderr=True)).print
    runs = [8, 32] if quick else [50, 500]
    jobs = default_jobs()
    load_before = _load()

    def sweep(executor: Any, n: int) -> float:
        specs = [RunSpec.make(bench_config(10, 0), "central", (), i) for i in range(n)]
        results: list[RunResult] = []
        wall = _timed(executor.run, simulate, specs, results.append)[0]
        failed = [res.error for res in results if res.status != "ok"]
        if failed or len(results) != n:
            raise RuntimeError(f"a bench run failed under {executor.name}: {failed[:1]}")
        return float(wall)

    def best(executor: Any) -> list[float]:
        return [min(sweep(executor, n) for _ in range(repeat)) for n in runs]

    say(f"[dim]sweep bench: {runs} runs of 10 tasks, best of {repeat}, 1 and {jobs} jobs[/]")
    first = sweep(LocalExecutor(jobs), runs[0])
    serial, one, many = best(SerialExecutor()), best(LocalExecutor(1)), best(LocalExecutor(jobs))
    return SweepReport(runs, serial, one, many, first, jobs, repeat, load_before, _load())


def print_sweep_bench(report: SweepReport, console: Console | None = None) -> None:
    """The sweep overhead figures."""
    out, r = console or Console(), report
    many = f"{r.jobs} jobs"
    table = Table("runs", "serial s", "1 job s", f"{many} s", "ms/run, 1 job", f"ms/run, {many}",
                  box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    rows = zip(r.runs, r.serial_seconds, r.one_seconds, r.many_seconds,
               r.overhead_ms(), r.overhead_ms(one=False), strict=True)  # fmt: skip
    for n, *secs, ms_one, ms_many in rows:
        table.add_row(str(n), *(f"{x:.3f}" for x in secs), f"{ms_one:.2f}", f"{ms_many:.2f}")
    out.print(
        "[bold]kossim bench --sweep[/]: 10-task runs through the local-process executor; "
        "ms/run is (local - serial) / runs, wall clock, pool start-up included"
    )
    out.print(table)
    out.print(
        f"marginal dispatch cost {r.marginal_ms():.2f} ms per extra run with 1 job, "
        f"{r.marginal_ms(one=False):.2f} with {many} (start-up excluded); first local sweep "
        f"{r.first_seconds:.2f} s (starts the fork server); best of {r.repeat}; load average "
        f"{_fmt_load(r.load_before)} before, {_fmt_load(r.load_after)} after"
    )

"""``kossim bench --scale``, run lengths: CPU µs per task and peak RSS as a run grows.

The bench's standard system (M/M/8, rate 7.2, mean service 1: utilisation
0.9; no trace, no warm-up) runs once per length in a fresh interpreter that
has imported ``kossim.cli`` and ``kossim.lab`` first, as ``kossim run`` has
(:mod:`kossim.bench.rss`): ``simulate``, metrics included. The hand-written
SimPy model of the same system runs beside it as the reference. Memory flat in
run length shows as a peak that does not grow with the tasks. The ``run MiB``
column is the peak of the whole ``kossim run --no-report`` command (serial) on
the same system, from interpreter start: imports, simulation, storing,
aggregation and the printed summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kossim.bench.rss import Rss, measure_rss

__all__ = [
    "LENGTHS",
    "LONG_LENGTHS",
    "QUICK_LENGTHS",
    "RunLengthReport",
    "format_length_row",
    "length_header",
    "length_title",
    "lengths_for",
    "print_run_lengths",
    "run_lengths",
]

LENGTHS: tuple[int, ...] = (50_000, 200_000, 1_000_000)
LONG_LENGTHS: tuple[int, ...] = (*LENGTHS, 10_000_000)
QUICK_LENGTHS: tuple[int, ...] = (2_000, 8_000)


@dataclass
class RunLengthReport:
    lengths: tuple[int, ...]
    kossim: list[Rss] = field(default_factory=list)
    simpy: list[Rss] = field(default_factory=list)
    command: list[Rss] = field(default_factory=list)
    """The whole ``kossim run --no-report`` command per length."""


def lengths_for(quick: bool = False, long: bool = False) -> tuple[int, ...]:
    return QUICK_LENGTHS if quick else LONG_LENGTHS if long else LENGTHS


def run_lengths(
    lengths: tuple[int, ...] = LENGTHS, simpy: bool = True, progress: Any = None
) -> RunLengthReport:
    """One kossim run (and one SimPy run) per length, each in a fresh interpreter."""
    from kossim.bench.mmc import MEAN_SERVICE, RATE, SERVERS, bench_config

    report = RunLengthReport(lengths)
    for n in lengths:
        config = bench_config(n, 0)
        report.kossim.append(measure_rss({"kind": "run", "policy": "central", "config": config}))
        command = {**config, "seeds": 1}  # one run, as the simulate job
        report.command.append(measure_rss({"kind": "command", "config": command}))
        if simpy:
            args = [SERVERS, RATE, MEAN_SERVICE, n, 0, 1]
            report.simpy.append(measure_rss({"kind": "simpy", "args": args}))
        if progress:
            progress(n, report)
    return report


def format_length_row(n: int, report: RunLengthReport, i: int) -> str:
    k = report.kossim[i]
    cells = f"{n:>12,}{k.cpu_seconds / n * 1e6:>10.2f}{k.base_mib:>10.1f}{k.peak_mib:>10.1f}"
    cells += f"{k.growth_mib:>10.1f}"
    if i < len(report.command):
        cells += f"{report.command[i].peak_mib:>10.1f}"
    if i < len(report.simpy):
        s = report.simpy[i]
        cells += f"{s.cpu_seconds / n * 1e6:>10.2f}{s.peak_mib:>10.1f}{s.growth_mib:>10.1f}"
    return cells


def length_header(simpy: bool = True) -> str:
    head = f"{'tasks':>12}{'µs/task':>10}{'base MiB':>10}{'peak MiB':>10}{'growth':>10}"
    head += f"{'run MiB':>10}"
    if simpy:
        head += f"{'SimPy µs':>10}{'SimPy pk':>10}{'growth':>10}"
    return head


def length_title() -> str:
    return (
        "Run length: M/M/8 at rho 0.9, no trace, one run per length in a fresh interpreter "
        "(kossim: simulate() after importing kossim.cli and kossim.lab; CPU µs per task; "
        "peak = whole-process peak RSS, base = RSS after imports, growth = peak - base, "
        "lazy imports during the run included; run MiB = peak RSS of the whole "
        "`kossim run --no-report --executor serial` command, interpreter start to summary)"
    )


def print_run_lengths(report: RunLengthReport) -> None:
    print(length_title())
    print(length_header(bool(report.simpy)))
    for i, n in enumerate(report.lengths):
        print(format_length_row(n, report, i))
    if report.kossim:
        print(f"memory measured as {report.kossim[0].method}")

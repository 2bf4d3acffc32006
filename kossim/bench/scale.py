"""``kossim bench --scale``: what a decision costs as the fleet grows, in CPU microseconds per task.

The system is M/M/c-style: ``agents`` identical agents (speed 1, one slot),
exponential work of mean 1 and Poisson arrivals at 90 % load. Each built-in
routing component is measured under push dispatch, and the central (pull)
dispatch with its default routing, each in three variants: ``plain``,
``failures`` (every agent up for an exponential 1,000 and down for an
exponential 10 time units, resumed) and ``latency`` (a constant 0.05 on every
link of the star). The cost per task is marginal: the CPU time
(``time.process_time``) of a run of 4 arrivals per agent (at least 8,000) less
that of a run of a quarter as many, over the difference, so building the fleet
is left out (the O(1) ``random`` router's growth is the engine's own, an event
heap and memory that grow with the fleet, not a decision's); each
figure is the median of ``repeat`` measurements (a figure to compare on a
shared machine, never a timing test).

Peak RSS per cell: one run of the larger size in a fresh interpreter
(:mod:`kossim.bench.rss`: ``VmHWM`` after resetting it post-import, so the
figure is the whole process's peak; the post-import RSS is printed apart and
the table shows the growth over it). The hand-written SimPy model
(:mod:`kossim.bench.simpy_model`, one ``Resource`` of ``agents`` servers, the
same load) is measured the same way as a reference row: the part of the growth
that any SimPy model of a bigger fleet pays (event heap, cache misses), against
which the 2x acceptance is read.

Run it as ``kossim bench --scale`` or ``python -m kossim.bench.scale``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from kossim.bench.rss import Rss, measure_rss

__all__ = [
    "CASES",
    "EXTRAS",
    "QUICK_SIZES",
    "SIMPY",
    "SIZES",
    "VARIANTS",
    "ScaleReport",
    "cell_rss",
    "footer",
    "format_row",
    "header",
    "measure",
    "measure_simpy",
    "print_scale",
    "run_scale",
    "scale_bench",
    "scale_config",
    "sizes_for",
    "title",
]

SIZES: tuple[int, ...] = (10, 100, 1_000, 10_000)
QUICK_SIZES = (10, 100)
VARIANTS: tuple[str, ...] = ("plain", "failures", "latency")
#: (label, dispatch, routing) of every built-in routing and dispatch component measured.
CASES: tuple[tuple[str, str, Any], ...] = (
    ("central", "central", "random"),
    ("random", "push", "random"),
    ("round_robin", "push", "round_robin"),
    ("jsq", "push", "jsq"),
    ("power_of_d", "push", {"id": "power_of_d", "d": 2}),
    ("least_work", "push", "least_work"),
    ("fastest", "push", "fastest"),
    ("role_based", "push", "role_based"),
    ("queue_limit", "push", "jsq"),
    ("trust_gated", "push", "jsq"),
)
#: What a case adds to the M/M/c system: ``queue_limit``, every agent holds at most 3
#: tasks (push offers only agents with room); ``trust_gated``, a quarter of the fleet on
#: probation takes only the low-criticality half of the tasks.
EXTRAS: dict[str, dict[str, Any]] = {
    "queue_limit": {"agent": {"queue_limit": 3}},
    "trust_gated": {
        "probation": 0.75,
        "low": True,
        "policy": {"coordinator": {"id": "trust_gated", "mode": "low_criticality"}},
    },
}

#: label of the reference row: the hand-written SimPy model at the same fleet sizes
SIMPY = "simpy_model"


def scale_config(
    agents: int, dispatch: str, routing: Any, variant: str, tasks: int, case: str = ""
) -> dict:
    """The M/M/c-style experiment of one measurement, as a config dictionary (``case``:
    a label of :data:`EXTRAS` adds its settings)."""
    extra = EXTRAS.get(case, {})
    job = {"dist": "exponential", "mean": 1}
    groups: list[dict[str, Any]] = [{"group": "a", "count": agents, **extra.get("agent", {})}]
    if "probation" in extra:
        new = agents // 4
        groups = [
            {"group": "a", "count": agents - new},
            {"group": "new", "count": new, "trust": extra["probation"]},
        ]
    tasks_of: list[dict[str, Any]] = [{"type": "job", "work": job}]
    if extra.get("low"):
        tasks_of = [
            {"type": "job", "share": 0.5, "work": job},
            {"type": "chore", "share": 0.5, "work": job, "criticality": "low"},
        ]
    scenario: dict[str, Any] = {
        "agents": groups,
        "workload": {"arrivals": {"process": "poisson", "rate": 0.9 * agents}, "tasks": tasks_of},
    }
    if variant == "failures":
        scenario["failures"] = {
            "agents": {
                "up": {"dist": "exponential", "mean": 1000},
                "down": {"dist": "exponential", "mean": 10},
                "on_failure": "resume",
            }
        }
    elif variant == "latency":
        scenario["network"] = {"latency": {"dist": "constant", "value": 0.05}}
    elif variant != "plain":
        raise ValueError(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
    policy: dict[str, Any] = {
        "name": "p",
        "dispatch": dispatch,
        "routing": routing,
        **extra.get("policy", {}),
    }
    return {
        "name": "bench-scale",
        "seeds": 1,
        "tasks": tasks,
        "scenario": scenario,
        "policies": [policy],
    }


def _cpu(config: dict) -> float:
    from kossim.runspec import RunSpec
    from kossim.sim import simulate_world

    spec = RunSpec(run_id="bench", policy="p", point=(), seed=0, config=config)
    gc.collect()  # each run starts from the same heap, not the garbage of the last
    t0 = time.process_time()
    simulate_world(spec)
    return time.process_time() - t0


def _simpy_cpu(agents: int, tasks: int) -> float:
    from kossim.bench.simpy_model import simulate_mmc

    gc.collect()
    t0 = time.process_time()
    simulate_mmc(agents, 0.9 * agents, 1.0, tasks, 0, 0)
    return time.process_time() - t0


def _tasks(agents: int, per_agent: int) -> tuple[int, int]:
    tasks = max(8_000, per_agent * agents)
    return tasks, tasks // 4


@dataclass
class ScaleReport:
    sizes: tuple[int, ...]
    repeat: int
    #: (case, variant) -> microseconds per task, one per size
    figures: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    #: (case, variant) -> peak RSS of the larger run in a fresh interpreter, one per size
    rss: dict[tuple[str, str], list[Rss]] = field(default_factory=dict)

    def growth(self, key: tuple[str, str]) -> float:
        return _growth(self.figures[key])

    def relative(self, key: tuple[str, str]) -> float | None:
        """A row's growth over the SimPy model's own (None without the reference row)."""
        ref = self.figures.get((SIMPY, "plain"))
        return _growth(self.figures[key]) / _growth(ref) if ref else None


def _growth(row: list[float]) -> float:
    return row[-1] / row[0] if row[0] > 0 else float("inf")


def measure(
    agents: int,
    dispatch: str,
    routing: Any,
    variant: str,
    per_agent: int,
    repeat: int,
    case: str = "",
) -> float:
    """Median marginal CPU microseconds per task of ``repeat`` measurements."""
    tasks, small = _tasks(agents, per_agent)
    big_cfg = scale_config(agents, dispatch, routing, variant, tasks, case)
    small_cfg = scale_config(agents, dispatch, routing, variant, small, case)
    out = []
    for _ in range(repeat):
        delta = _cpu(big_cfg) - _cpu(small_cfg)
        out.append(max(delta, 0.0) / (tasks - small) * 1e6)
    return statistics.median(out)


def measure_simpy(agents: int, per_agent: int, repeat: int) -> float:
    """The SimPy reference model's marginal CPU microseconds per task, as :func:`measure`."""
    tasks, small = _tasks(agents, per_agent)
    out = []
    for _ in range(repeat):
        delta = _simpy_cpu(agents, tasks) - _simpy_cpu(agents, small)
        out.append(max(delta, 0.0) / (tasks - small) * 1e6)
    return statistics.median(out)


def cell_rss(
    agents: int, dispatch: str, routing: Any, variant: str, per_agent: int, case: str = ""
) -> Rss:
    """Peak RSS of one run of the larger size of a cell, in a fresh interpreter."""
    tasks, _ = _tasks(agents, per_agent)
    if dispatch == SIMPY:
        return measure_rss({"kind": "simpy", "args": [agents, 0.9 * agents, 1.0, tasks, 0, 0]})
    config = scale_config(agents, dispatch, routing, variant, tasks, case)
    return measure_rss({"kind": "world", "policy": "p", "config": config})


def run_scale(
    quick: bool = False,
    repeat: int = 3,
    sizes: tuple[int, ...] | None = None,
    cases: tuple[str, ...] | None = None,
    variants: tuple[str, ...] = VARIANTS,
    per_agent: int = 4,
    progress: Any = None,
    memory: bool = True,
    simpy: bool = True,
) -> ScaleReport:
    """Measure every case and variant at every fleet size (``quick``: two small sizes),
    and the SimPy reference model first (``simpy``); ``memory``: peak RSS per cell too.
    ``progress(label, variant, row, rss_row, ref)`` is called after each row, ``ref``
    the SimPy model's growth (None until it is measured)."""
    sizes = sizes or sizes_for(quick)
    report = ScaleReport(sizes=sizes, repeat=repeat)
    _cpu(scale_config(10, "push", "random", "latency", 500))  # imports and first-run costs
    tasks_per = 1 if quick else per_agent
    rows: list[tuple[str, str, Any, str]] = []
    if simpy:
        rows.append((SIMPY, SIMPY, None, "plain"))
    for label, dispatch, routing in CASES:
        if not cases or label in cases:
            rows.extend((label, dispatch, routing, v) for v in variants)
    for label, dispatch, routing, variant in rows:
        row, rss_row = [], []
        for n in sizes:
            if dispatch == SIMPY:
                row.append(measure_simpy(n, tasks_per, repeat))
            else:
                row.append(measure(n, dispatch, routing, variant, tasks_per, repeat, label))
            if memory:
                rss_row.append(cell_rss(n, dispatch, routing, variant, tasks_per, label))
        report.figures[(label, variant)] = row
        if memory:
            report.rss[(label, variant)] = rss_row
        if progress:
            ref = report.figures.get((SIMPY, "plain"))
            progress(label, variant, row, rss_row, _growth(ref) if ref else None)
    return report


def sizes_for(quick: bool) -> tuple[int, ...]:
    return QUICK_SIZES if quick else SIZES


def format_row(
    label: str,
    variant: str,
    row: list[float],
    rss: list[Rss] | None = None,
    ref: float | None = None,
) -> str:
    """A table row: us per task by size, the growth (last / first), the growth over the
    SimPy model's own (``ref``; blank without it), then peak RSS growth by size."""
    cells = "".join(f"{us:>9.1f}" for us in row)
    growth = _growth(row)
    versus = f"{growth / ref:>7.2f}x" if ref else f"{'':>8}"
    mem = "".join(f"{r.growth_mib:>8.1f}" for r in rss or [])
    return f"{label:<12}{variant:<9}{cells}{growth:>7.1f}x{versus} {mem}"


def header(sizes: tuple[int, ...], memory: bool = True) -> str:
    cells = "".join(f"{n:>9,}" for n in sizes)
    mem = "".join(f"{n:>8,}" for n in sizes) if memory else ""
    return f"{'component':<12}{'variant':<9}{cells}{'growth':>8}{'/simpy':>8} {mem}"


def title(repeat: int, memory: bool = True) -> str:
    text = (
        f"CPU microseconds per task by fleet size (marginal, median of {repeat}; rho 0.9)"
        f"; {SIMPY}: the hand-written SimPy model, the reference; /simpy: a row's growth "
        f"over the model's own"
    )
    if memory:
        text += (
            "; then peak RSS growth in MiB by fleet size (one run of the larger size in a "
            "fresh interpreter: peak - post-import RSS)"
        )
    return text


def footer(report: ScaleReport) -> str:
    bases = [r.base_mib for row in report.rss.values() for r in row]
    if not bases:
        return ""
    method = next(iter(report.rss.values()))[0].method
    peaks = [r.peak_mib for row in report.rss.values() for r in row]
    return (
        f"post-import RSS {min(bases):.0f}-{max(bases):.0f} MiB; whole-process peak "
        f"{min(peaks):.0f}-{max(peaks):.0f} MiB; memory measured as {method}"
    )


def print_scale(report: ScaleReport) -> None:
    print(title(report.repeat, bool(report.rss)))
    print(header(report.sizes, bool(report.rss)))
    ref = report.figures.get((SIMPY, "plain"))
    for key, row in report.figures.items():
        print(format_row(*key, row, report.rss.get(key), _growth(ref) if ref else None))
    if report.rss:
        print(footer(report))


def scale_bench(quick: bool = False, repeat: int = 3, long: bool = False) -> None:
    """Everything ``kossim bench --scale`` prints, each table as it is measured: fleet
    sizes (CPU and peak RSS), run lengths (``long``: 10 million tasks too), and the sweep
    overhead per run per executor of :mod:`kossim.bench.sweep_store`."""
    from kossim.bench.runlength import (
        format_length_row,
        length_header,
        length_title,
        lengths_for,
        run_lengths,
    )
    from kossim.bench.sweep_store import print_store_bench, run_store_bench

    print(title(repeat), flush=True)
    print(header(sizes_for(quick)), flush=True)
    done = run_scale(
        quick=quick, repeat=repeat, progress=lambda *row: print(format_row(*row), flush=True)
    )
    print(footer(done), end="\n\n", flush=True)
    print(length_title(), flush=True)
    print(length_header(), flush=True)
    lengths = run_lengths(
        lengths_for(quick, long),
        progress=lambda n, rep: print(format_length_row(n, rep, len(rep.kossim) - 1), flush=True),
    )
    print(f"memory measured as {lengths.kossim[0].method}", end="\n\n", flush=True)
    executors = ("serial", "local") if quick else ("serial", "local", "dask")
    from rich.console import Console

    wide = Console(width=max(Console().width, 120))  # a table not cut to a pipe's 80 columns
    print_store_bench(run_store_bench(100 if quick else 1000, repeat, executors), wide)


def _cli(argv: list[str] | None = None) -> argparse.Namespace:
    """The options of ``python -m kossim.bench.scale`` (the fleet table alone)."""
    parser = argparse.ArgumentParser(
        prog="python -m kossim.bench.scale",
        description="The fleet-size table of kossim bench --scale, alone: CPU us per task "
        "of each routing and dispatch component by fleet size, beside the SimPy model.",
    )
    parser.add_argument("cases", nargs="*", help="components to measure (default: all)")
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="fleet sizes, e.g. 10,10000"
    )
    parser.add_argument("--repeat", type=int, default=1, help="medians of N (default 1)")
    parser.add_argument("--per-agent", type=int, default=4, help="measured tasks per agent")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="plain,failures,latency")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak RSS cells")
    args = parser.parse_args(argv)
    try:
        args.sizes = tuple(int(x) for x in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes takes integers separated by commas (got {args.sizes!r})")
    known = [SIMPY, *(label for label, _, _ in CASES)]
    strangers = sorted(set(args.cases) - set(known))
    if strangers:
        parser.error(f"unknown components {strangers}; allowed: {', '.join(known)}")
    args.variants = tuple(args.variants.split(","))
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; allowed: {', '.join(VARIANTS)}")
    return args


if __name__ == "__main__":  # pragma: no cover - a measuring tool
    opts = _cli()
    wanted = tuple(opts.cases)
    sizes, rep, per, variants = opts.sizes, opts.repeat, opts.per_agent, opts.variants
    memory = not opts.no_memory
    print(title(rep, memory), flush=True)
    print(header(sizes, memory), flush=True)
    done = run_scale(
        repeat=rep,
        sizes=sizes,
        cases=wanted or None,
        variants=variants,
        per_agent=per,
        progress=lambda *row: print(format_row(*row), flush=True),
        memory=memory,
        simpy=SIMPY in wanted or not wanted,
    )
    print(footer(done))

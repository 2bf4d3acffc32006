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

Run it as ``kossim bench --scale`` or ``python -m kossim.bench.scale``.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CASES",
    "QUICK_SIZES",
    "SIZES",
    "VARIANTS",
    "ScaleReport",
    "format_row",
    "header",
    "measure",
    "print_scale",
    "run_scale",
    "scale_config",
    "sizes_for",
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
)


def scale_config(agents: int, dispatch: str, routing: Any, variant: str, tasks: int) -> dict:
    """The M/M/c-style experiment of one measurement, as a config dictionary."""
    scenario: dict[str, Any] = {
        "agents": [{"group": "a", "count": agents}],
        "workload": {
            "arrivals": {"process": "poisson", "rate": 0.9 * agents},
            "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": 1}}],
        },
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
    policy: dict[str, Any] = {"name": "p", "dispatch": dispatch, "routing": routing}
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


@dataclass
class ScaleReport:
    sizes: tuple[int, ...]
    repeat: int
    #: (case, variant) -> microseconds per task, one per size
    figures: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def growth(self, key: tuple[str, str]) -> float:
        row = self.figures[key]
        return row[-1] / row[0] if row[0] > 0 else float("inf")


def measure(
    agents: int, dispatch: str, routing: Any, variant: str, per_agent: int, repeat: int
) -> float:
    """Median marginal CPU microseconds per task of ``repeat`` measurements."""
    tasks = max(8_000, per_agent * agents)
    small = tasks // 4
    big_cfg = scale_config(agents, dispatch, routing, variant, tasks)
    small_cfg = scale_config(agents, dispatch, routing, variant, small)
    out = []
    for _ in range(repeat):
        delta = _cpu(big_cfg) - _cpu(small_cfg)
        out.append(max(delta, 0.0) / (tasks - small) * 1e6)
    return statistics.median(out)


def run_scale(
    quick: bool = False,
    repeat: int = 3,
    sizes: tuple[int, ...] | None = None,
    cases: tuple[str, ...] | None = None,
    variants: tuple[str, ...] = VARIANTS,
    per_agent: int = 4,
    progress: Any = None,
) -> ScaleReport:
    """Measure every case and variant at every fleet size (``quick``: two small sizes)."""
    sizes = sizes or sizes_for(quick)
    report = ScaleReport(sizes=sizes, repeat=repeat)
    _cpu(scale_config(10, "push", "random", "latency", 500))  # imports and first-run costs
    for label, dispatch, routing in CASES:
        if cases and label not in cases:
            continue
        for variant in variants:
            row = []
            for n in sizes:
                tasks_per = 1 if quick else per_agent
                row.append(measure(n, dispatch, routing, variant, tasks_per, repeat))
            report.figures[(label, variant)] = row
            if progress:
                progress(label, variant, row)
    return report


def sizes_for(quick: bool) -> tuple[int, ...]:
    return QUICK_SIZES if quick else SIZES


def format_row(label: str, variant: str, row: list[float]) -> str:
    cells = "".join(f"{us:>10.1f}" for us in row)
    growth = row[-1] / row[0] if row[0] > 0 else float("inf")
    return f"{label:<12}{variant:<10}{cells}{growth:>9.1f}x"


def header(sizes: tuple[int, ...]) -> str:
    cells = "".join(f"{n:>10,}" for n in sizes)
    return f"{'component':<12}{'variant':<10}{cells}{'growth':>10}"


def print_scale(report: ScaleReport) -> None:
    print(f"CPU microseconds per task by fleet size (median of {report.repeat}; rho 0.9)")
    print(header(report.sizes))
    for (label, variant), row in report.figures.items():
        print(format_row(label, variant, row))


if __name__ == "__main__":  # pragma: no cover - a measuring tool
    args = sys.argv[1:]
    wanted = tuple(a for a in args if not a.startswith("-"))
    sizes = SIZES
    rep = 1
    per = 4
    variants = VARIANTS
    for a in args:
        if a.startswith("--per-agent="):
            per = int(a.split("=", 1)[1])
        if a.startswith("--variants="):
            variants = tuple(a.split("=", 1)[1].split(","))
        if a.startswith("--sizes="):
            sizes = tuple(int(x) for x in a.split("=", 1)[1].split(","))
        if a.startswith("--repeat="):
            rep = int(a.split("=", 1)[1])
    print(header(sizes), flush=True)
    run_scale(
        repeat=rep,
        sizes=sizes,
        cases=wanted or None,
        variants=variants,
        per_agent=per,
        progress=lambda label, variant, row: print(format_row(label, variant, row), flush=True),
    )

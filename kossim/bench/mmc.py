"""``kossim bench``: what a simulated task costs, against a hand-written SimPy model.

The bundled scenario is M/M/c with c = 8, arrival rate 7.2 and mean service 1
(utilisation 0.9). It runs through kossim (``simulate``, metrics included, as
a user pays for them) and, in the same process, through the idiomatic SimPy
model of :mod:`kossim.bench.simpy_model`. Both mean waits are set against Erlang C
with a batch-means 95 % interval, so the reader sees that the two models
simulate the same system before comparing their speed.

Timing: ``time.perf_counter`` around whole runs, the two models interleaved,
each figure the *best* of ``repeat`` runs: on a shared machine noise only ever
adds time, so the minimum is the steadiest estimate of the intrinsic cost. The
median, the CPU time (``process_time``, which ignores time spent waiting for a
core) and the load average are printed too, so the reader can judge the noise.
µs per task divides by every simulated task, warm-up included.

Memory: the peak resident size during one run minus the resident size just
before it, in a fresh interpreter per model, with the kernel's high-water
mark reset after imports (``/proc/self/clear_refs``; ``ru_maxrss`` elsewhere).
tracemalloc would see only Python's allocations and slows this
allocation-heavy loop several times over; RSS is what the machine pays,
allocator slack included, at full speed.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table
from scipy import stats as sps

from kossim.analysis.stats import t_interval
from kossim.bench.protocols import ProtocolFigures, measure_protocols, print_protocols
from kossim.bench.simpy_model import simulate_mmc
from kossim.runspec import RunSpec
from kossim.sim import _facts, simulate, simulate_world

__all__ = [
    "BenchReport",
    "ModelFigures",
    "batch_means",
    "bench_config",
    "erlang_c_wait",
    "print_bench",
    "run_bench",
]
# ``kossim bench --sweep`` lives in kossim.bench.sweep.

SERVERS, RATE, MEAN_SERVICE = 8, 7.2, 1.0
WARMUP_TASKS = 10_000
SIZES = (50_000, 200_000, 800_000)
QUICK_TASKS, QUICK_WARMUP, QUICK_SIZES = 20_000, 2_000, (5_000, 10_000, 20_000)
SEED = 1
BATCHES = 20
MIB = 1024 * 1024


def erlang_c_wait(servers: int, rate: float, mean_service: float) -> float:
    """Mean wait in queue of M/M/c (Erlang C); needs utilisation below 1."""
    load = rate * mean_service
    if not 0 < load < servers:
        raise ValueError(f"M/M/c needs 0 < rate x mean_service < servers (got {load} vs {servers})")
    blocked = 1.0  # Erlang B by its stable recursion, then C from B
    for k in range(1, servers + 1):
        blocked = load * blocked / (k + load * blocked)
    waits = blocked / (1 - load / servers * (1 - blocked))
    return waits * mean_service / (servers - load)


def batch_means(values: np.ndarray, batches: int = BATCHES) -> tuple[float, float, float]:
    """Mean and 95 % t interval of ``batches`` equal batches of consecutive values.

    A remainder that does not fill a batch is dropped from the front (the end
    nearest the warm-up).
    """
    return t_interval(_batches(values, batches))


def _batches(values: np.ndarray, batches: int = BATCHES) -> np.ndarray:
    size = len(values) // batches
    if size == 0:
        raise ValueError(
            f"need at least {batches} values for {batches} batches (got {len(values)})"
        )
    kept = np.asarray(values[len(values) - size * batches :], dtype=float)
    return kept.reshape(batches, size).mean(axis=1)


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Difference of two samples' means and its 95 % Welch interval."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(sps.t.ppf(0.975, df) * math.sqrt(va + vb))
    diff = float(a.mean() - b.mean())
    return diff, diff - half, diff + half


def bench_config(tasks: int, warmup_tasks: int = WARMUP_TASKS) -> dict[str, Any]:
    """The kossim experiment of the bench scenario, as plain data."""
    return {
        "name": "bench-mmc",
        "tasks": tasks,
        "warmup_tasks": warmup_tasks,
        "scenario": {
            "agents": [{"group": "worker", "count": SERVERS}],
            "workload": {
                "arrivals": {"process": "poisson", "rate": RATE},
                "tasks": [{"type": "job", "work": {"dist": "exponential", "mean": MEAN_SERVICE}}],
            },
        },
        "policies": [{"name": "central", "dispatch": "central", "queue": "fcfs"}],
    }


@dataclass
class ModelFigures:
    """One model at the headline size; times are per repetition, in seconds."""

    name: str
    wait_mean: float
    ci_low: float
    ci_high: float
    seconds: list[float]
    cpu_seconds: list[float]
    simulated: int
    """Tasks simulated per run, warm-up included."""
    peak_rss_mib: float
    """Peak RSS during one run in a fresh interpreter, minus the RSS just before it."""
    base_rss_mib: float
    """That interpreter's RSS after imports."""

    def us_per_task(self, cpu: bool = False, median: bool = False) -> float:
        times = self.cpu_seconds if cpu else self.seconds
        return float(np.median(times) if median else min(times)) / self.simulated * 1e6

    @property
    def tasks_per_second(self) -> float:
        return self.simulated / min(self.seconds)


@dataclass
class BenchReport:
    """Every figure ``kossim bench`` prints."""

    tasks: int
    warmup_tasks: int
    repeat: int
    seed: int
    quick: bool
    theory_wait: float
    kossim: ModelFigures
    simpy: ModelFigures
    engine_seconds: float
    """One ``simulate_world`` run: the engine and its task columns."""
    metrics_seconds: float
    """``compute_metrics`` on that run's columns."""
    difference: tuple[float, float, float]
    """kossim minus SimPy mean wait and its 95 % interval (Welch on batch means)."""
    sizes: list[int]
    size_seconds: list[list[float]]
    size_cpu_seconds: list[list[float]]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    protocols: ProtocolFigures | None = None
    """The same system with agents heartbeating, and traced."""
    cpus: int = field(default_factory=lambda: os.cpu_count() or 0)
    python: str = field(default_factory=platform.python_version)

    @property
    def agree(self) -> bool:
        """The two models' mean waits do not differ at the 5 % level."""
        return self.difference[1] <= 0 <= self.difference[2]

    def ratio(self, cpu: bool = False) -> float:
        """kossim µs per task over SimPy µs per task (below 1: kossim is faster)."""
        return self.kossim.us_per_task(cpu) / self.simpy.us_per_task(cpu)

    def size_us_per_task(self, cpu: bool = False) -> list[float]:
        times = self.size_cpu_seconds if cpu else self.size_seconds
        return [
            min(t) / (n + self.warmup_tasks) * 1e6 for n, t in zip(self.sizes, times, strict=True)
        ]

    def spread_pct(self, cpu: bool = False) -> float:
        """(max - min) / min of µs per task across sizes, in %."""
        us = self.size_us_per_task(cpu)
        return (max(us) - min(us)) / min(us) * 100


def _load() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:  # not on every platform
        return (math.nan, math.nan, math.nan)


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds, result) of ``fn(*args)``."""
    gc.collect()  # each run starts from a clean heap, not the previous run's garbage
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _kossim_run(tasks: int, warmup: int, seed: int) -> float:
    """One kossim run as a user pays for it (``simulate``, metrics included); its mean wait."""
    result = simulate(RunSpec.make(bench_config(tasks, warmup), "central", (), seed))
    if result.status != "ok":
        raise RuntimeError(f"the kossim bench run failed:\n{result.error}")
    return dict(((m, s), v) for m, s, v in result.metrics)[("wait_mean", "all")]


def _kossim_waits(tasks: int, warmup: int, seed: int) -> tuple[np.ndarray, float, float]:
    """Measured waits in arrival order, and the seconds of the engine and of the metrics."""
    from kossim.analysis.metrics import (
        compute_metrics,  # after kossim.sim: metrics <-> sim import cycle
    )

    spec = RunSpec.make(bench_config(tasks, warmup), "central", (), seed)
    engine, _, (world, cols) = _timed(simulate_world, spec)
    metrics = _timed(compute_metrics, cols, _facts(world))[0]
    waits = (cols["start"] - cols["arrival"])[cols["measured"]]
    return np.asarray(waits, dtype=float), engine, metrics


def _simpy_run(tasks: int, warmup: int, seed: int) -> list[float]:
    return simulate_mmc(SERVERS, RATE, MEAN_SERVICE, tasks, warmup, seed)


def memory_child(model: str, tasks: str, warmup: str, seed: str) -> None:
    """Entry of the fresh interpreter that measures one model's memory; prints JSON bytes."""
    run = {"kossim": _kossim_run, "simpy": _simpy_run}.get(model)
    if run is None:
        raise ValueError(f"unknown bench model {model!r} (expected 'kossim' or 'simpy')")
    gc.collect()
    try:  # "5" resets the kernel's peak-RSS mark to the current RSS (Linux)
        Path("/proc/self/clear_refs").write_text("5")
        base, peak = _proc_kib("VmRSS"), lambda: _proc_kib("VmHWM")
    except OSError:
        import resource

        unit = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit  # noqa: E731
    run(int(tasks), int(warmup), int(seed))
    print(json.dumps({"base": base, "peak": peak()}))


def _proc_kib(key: str) -> int:
    """A ``kB`` line of ``/proc/self/status``, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/self/status")


def _memory(model: str, tasks: int, warmup: int, seed: int) -> tuple[float, float]:
    """(peak RSS growth, base RSS) in MiB of one run in a fresh interpreter."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    code = "import sys; from kossim.bench.mmc import memory_child; memory_child(*sys.argv[1:])"
    args = [sys.executable, "-c", code, model, str(tasks), str(warmup), str(seed)]
    proc = subprocess.run(
        args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path}, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement of {model} failed:\n{proc.stderr}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    return max(0, got["peak"] - got["base"]) / MIB, got["base"] / MIB


def run_bench(
    tasks: int = 200_000,
    quick: bool = False,
    repeat: int = 3,
    console: Console | None = None,
    seed: int = SEED,
) -> BenchReport:
    """Measure kossim against the SimPy reference model (method: the module docstring).

    ``quick`` caps the headline at 20 000 tasks after 2 000 warm-up and sizes at
    5 000 to 20 000: a smoke run, whose intervals are narrow enough to miss the
    theory more often than 5 % of the time. Progress goes to ``console``
    (standard error by default).
    """
    if tasks < BATCHES or repeat < 1:
        raise ValueError(f"need tasks >= {BATCHES} and repeat >= 1 (got {tasks}, {repeat})")
    say = (console or Console(stderr=True)).print
    warmup = QUICK_WARMUP if quick else WARMUP_TASKS
    tasks = min(tasks, QUICK_TASKS) if quick else tasks
    sizes = list(QUICK_SIZES if quick else SIZES)
    load_before = _load()
    say(f"[dim]bench: M/M/{SERVERS}, {tasks} tasks after {warmup} warm-up, best of {repeat}[/]")
    k_times: list[tuple[float, float]] = []
    s_times: list[tuple[float, float]] = []
    k_wait, s_waits = math.nan, list[float]()
    for r in range(repeat):  # interleaved, so drifting load hits both models alike
        wall, cpu, k_wait = _timed(_kossim_run, tasks, warmup, seed)
        k_times.append((wall, cpu))
        wall, cpu, s_waits = _timed(_simpy_run, tasks, warmup, seed)
        s_times.append((wall, cpu))
        say(f"[dim]  {r + 1}/{repeat}: kossim {k_times[-1][0]:.2f} s, SimPy {wall:.2f} s[/]")
    k_waits, engine, metrics = _kossim_waits(tasks, warmup, seed)

    size_times = [list(k_times) if n == tasks else [] for n in sizes]  # reuse headline runs
    for _ in range(repeat):
        for i, n in enumerate(sizes):
            if n != tasks:
                size_times[i].append(_timed(_kossim_run, n, warmup, seed)[:2])
    say("[dim]  sizes timed; measuring memory in fresh interpreters[/]")
    s_arr = np.asarray(s_waits, dtype=float)
    k_ci, s_ci = batch_means(k_waits), batch_means(s_arr)
    simulated = tasks + warmup
    k_fig = ModelFigures(
        "kossim",
        k_wait,
        k_ci[1],
        k_ci[2],
        *_split(k_times),
        simulated,
        *_memory("kossim", tasks, warmup, seed),
    )
    s_fig = ModelFigures(
        "SimPy",
        float(s_arr.mean()),
        s_ci[1],
        s_ci[2],
        *_split(s_times),
        simulated,
        *_memory("simpy", tasks, warmup, seed),
    )
    walls, cpus = zip(*(_split(t) for t in size_times), strict=True)
    say("[dim]  timing the same system heartbeating, and traced[/]")
    protocols = measure_protocols(bench_config, tasks, warmup, seed, repeat)
    return BenchReport(
        tasks,
        warmup,
        repeat,
        seed,
        quick,
        erlang_c_wait(SERVERS, RATE, MEAN_SERVICE),
        k_fig,
        s_fig,
        engine,
        metrics,
        _welch(_batches(k_waits), _batches(s_arr)),
        sizes,
        list(walls),
        list(cpus),
        load_before,
        _load(),
        protocols,
    )


def _split(times: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [w for w, _ in times], [c for _, c in times]


def print_bench(report: BenchReport, console: Console | None = None) -> None:
    """The bench figures as tables, with the method stated under them."""
    out, r = console or Console(), report
    out.print(
        f"[bold]kossim bench[/]{' --quick (smoke sizes)' if r.quick else ''}: M/M/{SERVERS}, "
        f"rate {RATE}, mean service {MEAN_SERVICE} (utilisation {RATE * MEAN_SERVICE / SERVERS:.2f}"
        f"), {r.tasks:,} measured tasks after {r.warmup_tasks:,} warm-up, seed {r.seed}"
    )
    out.print(f"Erlang C: Wq = {r.theory_wait:.4f}")
    table = Table(
        "model",
        "Wq",
        "95 % CI",
        "covers",
        "tasks/s",
        "µs/task",
        "CPU µs",
        "RSS MiB",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for m in (r.kossim, r.simpy):
        table.add_row(
            m.name,
            f"{m.wait_mean:.4f}",
            f"{m.ci_low:.3f}-{m.ci_high:.3f}",
            "yes" if m.ci_low <= r.theory_wait <= m.ci_high else "NO",
            f"{m.tasks_per_second:,.0f}",
            f"{m.us_per_task():.2f}",
            f"{m.us_per_task(cpu=True):.2f}",
            f"{m.peak_rss_mib:.1f}",
        )
    out.print(table)
    d = r.difference
    out.print(
        f"kossim - SimPy Wq = {d[0]:+.4f}, 95 % CI [{d[1]:+.4f}, {d[2]:+.4f}]: "
        + ("the models agree" if r.agree else "[bold red]the models DISAGREE[/]")
    )
    k_med, s_med = r.kossim.us_per_task(median=True), r.simpy.us_per_task(median=True)
    share = r.metrics_seconds / (r.engine_seconds + r.metrics_seconds) * 100
    out.print(
        f"[bold]ratio kossim / SimPy = {r.ratio():.2f}[/] in µs per task, {r.ratio(cpu=True):.2f} "
        f"in CPU time, {k_med / s_med:.2f} in medians (kossim {k_med:.2f}, SimPy {s_med:.2f})\n"
        f"kossim split (one run): metrics take {share:.1f} % of its time, the engine the rest"
    )
    sizes = Table("kossim tasks", "µs/task", "CPU µs/task", "seconds per run", box=box.SIMPLE_HEAD)
    walls, cpus = r.size_us_per_task(), r.size_us_per_task(cpu=True)
    for n, wall, cpu, secs in zip(r.sizes, walls, cpus, r.size_seconds, strict=True):
        sizes.add_row(f"{n:,}", f"{wall:.2f}", f"{cpu:.2f}", " ".join(f"{s:.2f}" for s in secs))
    out.print(sizes)
    out.print(
        f"spread of µs/task across sizes, (max - min) / min: {r.spread_pct():.1f} % "
        f"({r.spread_pct(cpu=True):.1f} % in CPU time)"
    )
    out.print(
        f"load average {_fmt_load(r.load_before)} before, {_fmt_load(r.load_after)} after, on "
        f"{r.cpus} CPUs; Python {r.python}. Times: perf_counter, best of {r.repeat} (median "
        f"shown), models interleaved; µs/task counts warm-up tasks; CI from {BATCHES} batch "
        "means. Memory: peak RSS growth during one run in a fresh interpreter (post-import "
        f"RSS: kossim {r.kossim.base_rss_mib:.0f} MiB, SimPy {r.simpy.base_rss_mib:.0f} MiB)."
    )
    if r.protocols is not None:
        print_protocols(r.protocols, r.kossim.us_per_task(), out)


def _fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)

"""What coordination costs: the bench system with agents heartbeating, and traced.

The M/M/8 of ``kossim bench`` run again with a ``timeout`` detector, so that
each of the 8 agents sends a heartbeat every ``HEARTBEAT_INTERVAL`` (one
message and one timer each), and once with ``--trace`` (every message and
decision into the execution log). Both are timed like the headline run (best
of the repetitions, metrics included) and reported per task, beside the
plain run's figure.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from kossim.runspec import RunSpec
from kossim.sim import simulate

__all__ = ["HEARTBEAT_INTERVAL", "ProtocolFigures", "measure_protocols", "print_protocols"]

HEARTBEAT_INTERVAL = 1.0
TRACED_TASKS = 50_000
"""The traced run is shorter: its log holds about ten rows per task in memory."""


@dataclass
class ProtocolFigures:
    heartbeat_us: float
    """µs per task with every agent heartbeating (best of the repetitions)."""
    heartbeat_cpu_us: float
    heartbeats_per_task: float
    traced_us: float
    traced_cpu_us: float
    traced_tasks: int


def _timed_run(cfg: dict[str, Any], seed: int, trace: bool) -> tuple[float, float, Any]:
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    result = simulate(RunSpec.make(cfg, "central", (), seed, trace=trace))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if result.status != "ok":
        raise RuntimeError(f"the kossim bench run failed:\n{result.error}")
    return wall, cpu, result


def measure_protocols(
    config: Callable[[int, int], dict[str, Any]], tasks: int, warmup: int, seed: int, repeat: int
) -> ProtocolFigures:
    """Time the bench system heartbeating (``tasks`` tasks) and traced (fewer)."""
    beating = config(tasks, warmup)
    beating["policies"][0]["detector"] = {
        "id": "timeout",
        "interval": HEARTBEAT_INTERVAL,
        "timeout": 3 * HEARTBEAT_INTERVAL,
    }
    runs = [_timed_run(beating, seed, trace=False) for _ in range(repeat)]
    simulated = tasks + warmup
    m = {(name, scope): v for name, scope, v in runs[0][2].metrics}
    n_traced = min(tasks, TRACED_TASKS)
    traced = [_timed_run(config(n_traced, warmup), seed, trace=True) for _ in range(repeat)]
    return ProtocolFigures(
        heartbeat_us=min(r[0] for r in runs) / simulated * 1e6,
        heartbeat_cpu_us=min(r[1] for r in runs) / simulated * 1e6,
        heartbeats_per_task=m[("messages", "kind=heartbeat")] / m[("arrived", "all")],
        traced_us=min(r[0] for r in traced) / (n_traced + warmup) * 1e6,
        traced_cpu_us=min(r[1] for r in traced) / (n_traced + warmup) * 1e6,
        traced_tasks=n_traced,
    )


def print_protocols(p: ProtocolFigures, plain_us: float, out: Console) -> None:
    out.print(
        f"with the 8 agents heartbeating every {HEARTBEAT_INTERVAL:g} (timeout detector): "
        f"{p.heartbeat_us:.2f} µs/task ({p.heartbeat_cpu_us:.2f} CPU), "
        f"{p.heartbeats_per_task:.2f} heartbeats per task, {p.heartbeat_us / plain_us:.2f}x "
        f"the plain run; traced (--trace, {p.traced_tasks:,} tasks): {p.traced_us:.2f} µs/task "
        f"({p.traced_cpu_us:.2f} CPU), {p.traced_us / plain_us:.2f}x"
    )

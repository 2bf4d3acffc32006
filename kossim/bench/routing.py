"""What a routing decision costs as the fleet grows: microseconds per task.

The system: a quarter of the agents fast (speed 2), the rest slow, all
holding the one role the single task type needs, 70 % load, push dispatch on
an instant network without failures (so the coordinator hands the router its
ready list of eligible agents, with no scan of its own). The cost per task is
marginal: the CPU time of a run of ``tasks`` arrivals less that of a run of a
quarter as many, over the difference, so building the fleet is left out (one
measurement each, on a shared machine: a figure to compare, not a timing test).

Run it as ``python -m kossim.bench.routing [ROUTING ...]``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from kossim.runspec import RunSpec
from kossim.sim import simulate_world

__all__ = ["SIZES", "measure_routing", "routing_config"]

SIZES = (10, 100, 1_000, 10_000)


def routing_config(agents: int, routing: Any, tasks: int) -> dict[str, Any]:
    fast = max(1, agents // 4)
    slow = agents - fast
    return {
        "name": "bench-routing",
        "seeds": 1,
        "tasks": tasks,
        "scenario": {
            "roles": {"worker": {"skills": ["work"]}},
            "agents": [
                {"group": "fast", "count": fast, "speed": 2.0, "roles": ["worker"]},
                *([{"group": "slow", "count": slow, "roles": ["worker"]}] if slow else []),
            ],
            "workload": {
                "arrivals": {"process": "poisson", "rate": 0.7 * (2.0 * fast + slow)},
                "tasks": [
                    {"type": "job", "role": "worker", "work": {"dist": "exponential", "mean": 1}}
                ],
            },
        },
        "policies": [{"name": "p", "dispatch": "push", "routing": routing}],
    }


def _cpu(agents: int, routing: Any, tasks: int) -> float:
    spec = RunSpec(
        run_id="bench", policy="p", point=(), seed=0, config=routing_config(agents, routing, tasks)
    )
    t0 = time.process_time()
    simulate_world(spec)
    return time.process_time() - t0


def measure_routing(
    routing: Any, sizes: tuple[int, ...] = SIZES, per_agent: int = 4
) -> list[tuple[int, float]]:
    """``(agents, marginal microseconds per task)`` for each fleet size, from runs of
    ``per_agent`` arrivals per agent (at least 4,000) and a quarter as many."""
    out = []
    for n in sizes:
        tasks = max(4_000, per_agent * n)
        small = tasks // 4
        delta = _cpu(n, routing, tasks) - _cpu(n, routing, small)
        out.append((n, max(delta, 0.0) / (tasks - small) * 1e6))
    return out


if __name__ == "__main__":  # pragma: no cover - a measuring tool
    refs: list[Any] = sys.argv[1:] or ["jsq", "role_based", {"id": "role_based", "sample": 8}]
    for ref in refs:
        figures = measure_routing(ref)
        shown = ", ".join(f"{n:,}: {us:.0f}" for n, us in figures)
        print(f"{ref}: us per task by agents: {shown}", flush=True)

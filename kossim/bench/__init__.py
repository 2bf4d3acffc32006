"""``kossim bench``: the engine's cost per task, measured, never a timed test.

:mod:`~kossim.bench.mmc` times kossim against the hand-written SimPy model of
:mod:`~kossim.bench.simpy_model` on M/M/8 and checks both against Erlang C;
:mod:`~kossim.bench.protocols` times the same system with agents
heartbeating, and traced; :mod:`~kossim.bench.sweep` measures what the sweep
machinery costs per run.
"""

from __future__ import annotations

from kossim.bench.mmc import (
    QUICK_SIZES,
    BenchReport,
    ModelFigures,
    batch_means,
    bench_config,
    erlang_c_wait,
    memory_child,
    print_bench,
    run_bench,
)

__all__ = [
    "QUICK_SIZES",
    "BenchReport",
    "ModelFigures",
    "batch_means",
    "bench_config",
    "erlang_c_wait",
    "memory_child",
    "print_bench",
    "run_bench",
]

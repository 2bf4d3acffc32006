"""The sweep pipeline: plan the runs, execute them, store them, add seeds to precision.

:mod:`~kossim.lab.plan` expands policies x sweep points x seeds into run
specs; :mod:`~kossim.lab.executors` runs them (serial, local processes,
Dask) with :mod:`~kossim.lab.result_stream`, :mod:`~kossim.lab.lifeline`
and :mod:`~kossim.lab.interrupt` keeping workers and signals in hand;
:mod:`~kossim.lab.store` writes each run atomically (:mod:`~kossim.lab.atomic`)
into a locked (:mod:`~kossim.lab.folder_lock`) results folder
(:mod:`~kossim.lab.folders`) and aggregates; :mod:`~kossim.lab.sweep` ties
them together; :mod:`~kossim.lab.precision` adds seeds until a target holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kossim.lab.sweep import RunOutcome, SweepInterrupted, default_out_dir, run_experiment

__all__ = ["RunOutcome", "SweepInterrupted", "default_out_dir", "run_experiment"]


def __getattr__(name: str) -> Any:
    """The sweep on first use: ``kossim.lab.folders`` and friends load without the engine,
    pandas and scipy, so ``kossim --help`` and ``kossim validate`` start fast."""
    if name in __all__:
        from kossim.lab import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module 'kossim.lab' has no attribute {name!r}")

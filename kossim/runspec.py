"""The unit of work of a sweep: one policy at one sweep point with one seed.

A :class:`RunSpec` is plain, hashable, picklable data: it crosses process and
Dask boundaries unchanged. :func:`kossim.sim.simulate` turns one into a
:class:`RunResult`, which carries tidy metric rows (small) and, only when
tracing, per-task columns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MetricRow", "RunResult", "RunSpec", "stable_hash"]


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of JSON-serialisable data that is stable across processes and machines."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class RunSpec:
    """One simulation run.

    ``config`` is the fully resolved experiment (sweep point applied) as plain
    JSON-like data; ``policy`` names one entry of ``config["policies"]``;
    ``point`` lists the swept paths and their values at this point, in sweep
    order.
    """

    config: dict[str, Any] = field(hash=False, compare=False)
    policy: str
    point: tuple[tuple[str, Any], ...]
    seed: int
    trace: bool = False
    run_id: str = ""
    spill: str = field(default="", compare=False)
    """With ``trace``: a folder on the store's file system for the trace's spill files
    (the sweep's local executors set it); empty, the trace travels back in memory."""

    @staticmethod
    def make(
        config: dict[str, Any],
        policy: str,
        point: tuple[tuple[str, Any], ...],
        seed: int,
        trace: bool = False,
        inputs: dict[str, str] | None = None,
    ) -> RunSpec:
        """Build a spec whose ``run_id`` hashes the resolved config, policy, point and seed,
        and ``inputs``: digests of what the run reads besides its config (data files by
        contents, user components by source), so that a changed input is a new run."""
        key: dict[str, Any] = {"config": config, "policy": policy, "point": list(point)}
        key["seed"] = seed
        if inputs:  # absent when empty: runs that read nothing else keep their ids
            key["inputs"] = inputs
        return RunSpec(config, policy, point, seed, trace, stable_hash(key))


MetricRow = tuple[str, str, float]
"""``(metric, scope, value)``."""


@dataclass
class RunResult:
    """What one run produced; ``status`` is ``"ok"`` or ``"failed"``."""

    run_id: str
    policy: str
    point: tuple[tuple[str, Any], ...]
    seed: int
    status: str
    wall_time: float
    metrics: list[MetricRow] = field(default_factory=list)
    error: str | None = None
    counters: dict[str, float] = field(default_factory=dict)
    distributions: dict[str, list[float]] = field(default_factory=dict)
    """Quantiles at 0, 1, ..., 100 % per variable (``sojourn``)."""
    timeseries: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    """``variable -> (times, values)`` sampled on a fixed grid (``in_system``)."""
    tasks: Mapping[str, Any] | None = None
    """Per-task columns (name -> numpy array) when the run was traced: a
    :class:`~kossim.sim.tracefile.Trace`, read from its Parquet data on demand."""
    events: Mapping[str, Any] | None = None
    """With tracing: the execution log, one row per message and decision (with its reason)."""


_ENGINE_SOURCES = (
    "kossim/sim",
    "kossim/analysis/metrics.py",
    "kossim/dists.py",
    "kossim/registry.py",
    "kossim/config/models.py",
    "kossim/policy.py",
    "policies",
)


def engine_fingerprint() -> str:
    """Hash of the code that decides what a run computes (engine, metrics, built-in policies).

    Stored with every run record, so ``--resume`` never mixes results of
    different engine code. User components (``module:Class``) and data files
    are outside it: their digests are part of each run's key instead
    (:func:`kossim.lab.plan.run_inputs`).
    """
    global _FINGERPRINT
    if _FINGERPRINT is None:
        from pathlib import Path

        import kossim

        root = Path(kossim.__file__).resolve().parent.parent
        digest = hashlib.sha256(kossim.__version__.encode())
        for rel in _ENGINE_SOURCES:
            base = root / rel
            files = sorted(base.rglob("*.py")) if base.is_dir() else [base]
            for f in files:
                if f.is_file():
                    digest.update(str(f.relative_to(root)).encode())
                    digest.update(f.read_bytes())
        _FINGERPRINT = digest.hexdigest()[:16]
    return _FINGERPRINT


_FINGERPRINT: str | None = None

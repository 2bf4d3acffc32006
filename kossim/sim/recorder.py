"""Columnar records of finished tasks: compact arrays instead of live objects.

A finished task is copied into typed arrays (about 60 bytes a task) and the
object is dropped, so memory stays flat however long the run.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from kossim.sim.task import STATE_NAMES, Task

__all__ = ["COLUMNS", "Recorder", "columns_of"]

COLUMNS = (
    ("id", "q"),
    ("tidx", "h"),
    ("priority", "h"),
    ("arrival", "d"),
    ("start", "d"),
    ("end", "d"),
    ("deadline", "d"),
    ("agent", "i"),
    ("attempts", "h"),
    ("state", "b"),
    ("measured", "b"),
)


FLUSH = 4096


class Recorder:
    """Appends one row per terminal task."""

    def __init__(self) -> None:
        self.cols: dict[str, array[Any]] = {name: array(code) for name, code in COLUMNS}
        self.end_time = 0.0
        self.ts_times: list[float] = []
        self.ts_values: list[int] = []
        self._buf: list[Task] = []
        self.add = self._buf.append  # finished tasks wait in a short list, then go columnar

    def flush(self) -> None:
        buf = self._buf
        for name, _ in COLUMNS:
            self.cols[name].extend([getattr(t, name) for t in buf])
        buf.clear()


def columns_of(rec: Recorder, live: list[Task]) -> dict[str, np.ndarray]:
    """All tasks (finished, then live) as numpy columns sorted by task id."""
    rec.flush()
    out = {
        name: np.frombuffer(rec.cols[name], dtype=np.dtype(code)).copy() for name, code in COLUMNS
    }
    if live:
        extra = {name: np.array([_field(t, name) for t in live]) for name, _ in COLUMNS}
        out = {k: np.concatenate([out[k], extra[k].astype(out[k].dtype)]) for k in out}
    order = np.argsort(out["id"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    out["measured"] = out["measured"].astype(bool)
    return out


def _field(task: Task, name: str) -> Any:
    return getattr(task, name)


STATE_LABELS = np.array(STATE_NAMES)

"""Columnar records of finished tasks: compact arrays instead of live objects.

A finished task is copied into typed arrays (about 60 bytes a task) and the
object is dropped, so memory stays flat however long the run.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import numpy as np

from kossim.sim.task import Task

__all__ = ["COLUMNS", "FLAT", "WIDTH", "Recorder", "columns_of", "flat_columns"]

COLUMNS = (
    ("id", "q"),
    ("tidx", "h"),
    ("arrival", "d"),
    ("start", "d"),
    ("end", "d"),
    ("deadline", "d"),
    ("agent", "i"),
    ("attempts", "h"),
    ("hops", "h"),
    ("handoff", "d"),
    ("state", "b"),
)


FLUSH = 4096
"""Finished tasks buffered before they become column chunks."""
WIDTH = len(COLUMNS)
FLAT = FLUSH * WIDTH
"""The buffer's length when it is full: it holds WIDTH numbers per task."""
_ROW = attrgetter(*(name for name, _ in COLUMNS))


class Recorder:
    """Keeps finished tasks as numpy column chunks of ``FLUSH`` rows."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[np.ndarray]] = {name: [] for name, _ in COLUMNS}
        self.end_time = 0.0
        self.ts_times: list[float] = []
        self.ts_values: list[int] = []
        # Finished tasks wait as one flat list of numbers, WIDTH per task (row after row),
        # not as Task objects nor as a tuple per task. Numbers are no work for the garbage
        # collector, and nothing per task outlives its finish: a buffered tuple per task
        # (freed only at the flush) kept the collector's young-generation count growing by
        # one per task, which ran a young collection every ~700 tasks and, over a long run,
        # full collections of the whole heap (a fifth of the run time).
        self._buf: list[Any] = []

    def add(self, task: Task) -> None:
        buf = self._buf
        buf.extend(_ROW(task))
        if len(buf) >= FLAT:
            self.flush()

    def flush(self) -> None:
        buf = self._buf
        if not buf:
            return
        for k, (name, code) in enumerate(COLUMNS):
            self.chunks[name].append(np.array(buf[k::WIDTH], dtype=code))
        buf.clear()


def flat_columns(flat: list[Any]) -> dict[str, np.ndarray]:
    """A flat buffer of rows (``WIDTH`` numbers per task) as typed columns."""
    return {name: np.array(flat[k::WIDTH], dtype=code) for k, (name, code) in enumerate(COLUMNS)}


def columns_of(
    rec: Recorder, live: list[Task], priorities: list[int], warmup_tasks: int, warmup: float
) -> dict[str, np.ndarray]:
    """All tasks (finished, then live) as numpy columns sorted by task id.

    ``priority`` (a function of the type) and ``measured`` (of id and arrival)
    are derived here rather than recorded per task.
    """
    rec.flush()
    out = {}
    for name, code in COLUMNS:
        parts, rec.chunks[name] = rec.chunks[name], []  # handed over: no column is held twice
        if live:
            parts.append(np.array([getattr(t, name) for t in live], dtype=code))
        out[name] = np.concatenate(parts) if parts else np.empty(0, dtype=code)
        del parts
    order = np.argsort(out["id"], kind="stable")
    for name in out:  # one column at a time: the peak holds one extra column, not a copy of all
        out[name] = out[name][order]
    out["priority"] = np.asarray(priorities, dtype=np.int16)[out["tidx"]]
    out["measured"] = (out["id"] >= warmup_tasks) & (out["arrival"] >= warmup)
    return out

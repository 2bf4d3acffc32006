"""Columnar records of finished tasks: compact arrays instead of live objects.

A finished task is copied into typed arrays (about 60 bytes a task) and the
object is dropped, so memory stays flat however long the run.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import numpy as np

from kossim.sim.task import Task

__all__ = ["COLUMNS", "Recorder", "columns_of"]

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
_ROW = attrgetter(*(name for name, _ in COLUMNS))


class Recorder:
    """Keeps finished tasks as numpy column chunks of ``FLUSH`` rows."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[np.ndarray]] = {name: [] for name, _ in COLUMNS}
        self.end_time = 0.0
        self.ts_times: list[float] = []
        self.ts_values: list[int] = []
        # Finished tasks wait as rows, not as Task objects: a tuple of numbers drops out of
        # the garbage collector's lists at its first pass, while 4096 buffered tasks would be
        # promoted to the old generation and trigger full collections of the whole heap.
        self._buf: list[tuple[Any, ...]] = []

    def add(self, task: Task) -> None:
        # World.finish() does this inline (once per task): a subclass changes ``flush``, not this.
        buf = self._buf
        buf.append(_ROW(task))
        if len(buf) >= FLUSH:
            self.flush()

    def flush(self) -> None:
        buf = self._buf
        if not buf:
            return
        columns = zip(*buf, strict=True)
        for (name, code), values in zip(COLUMNS, columns, strict=True):
            # np.array over a tuple is ~5x faster than array.extend, item for item.
            self.chunks[name].append(np.array(values, dtype=code))
        buf.clear()


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

"""Streaming statistics of finished tasks: memory flat in run length.

:class:`StreamRecorder` buffers finished tasks as rows exactly as
:class:`~kossim.sim.recorder.Recorder` does (the hot path is the same), but
each full buffer is reduced to :class:`~kossim.analysis.tally.Tally` sums per
scope (``all``, ``priority=K``, ``type=T``), hop and agent counts, and the
tasks' time in the system inside the measurement window, then dropped. Counts
are exact, means exact up to the order of a floating-point sum, quantiles from
a DDSketch within :data:`~kossim.analysis.sketch.ALPHA` relative error.

:func:`kossim.sim.simulate` streams a run unless it keeps per-task data anyway:
``--trace`` (per-task columns are the trace), ``warmup: auto`` (MSER-5 needs
the series of sojourn times in arrival order) and scenarios with roles (they
keep a record per task for their own metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kossim.analysis.metrics import in_system_area
from kossim.analysis.sketch import Sketch
from kossim.analysis.tally import Tally
from kossim.sim.recorder import COLUMNS, Recorder, flat_columns
from kossim.sim.task import Task
from kossim.states import DONE, STATE_NAMES

__all__ = ["StreamRecorder", "StreamSummary", "TracingStreamRecorder"]

_INF = float("inf")


def _grow(counts: np.ndarray, more: np.ndarray) -> np.ndarray:
    if more.size > counts.size:
        counts = np.concatenate([counts, np.zeros(more.size - counts.size, dtype=np.int64)])
    counts[: more.size] += more
    return counts


class StreamSummary:
    """The per-task figures of a run, merged chunk by chunk (a ``TaskSummary``)."""

    def __init__(self, priorities: list[int], warmup_tasks: int, warmup: float) -> None:
        self._priorities = np.asarray(priorities, dtype=np.int16)
        self._warmup_tasks = warmup_tasks
        self._warmup = warmup
        self._all = Tally(Sketch())
        self._by_priority: dict[int, Tally] = {}
        self._by_type: dict[int, Tally] = {}
        self._hops = np.zeros(0, dtype=np.int64)
        self._agents = np.zeros(0, dtype=np.int64)
        self._area = 0.0
        self.start = 0.0
        self.end = 0.0

    def add(self, cols: dict[str, np.ndarray], start: float | None, end: float = _INF) -> None:
        """Merge a chunk of tasks; ``start`` is the window's start if it has begun.

        A chunk reduced before the window begins has no time inside it: its tasks
        ended before the start. Finished tasks' deadlines need no ``end``.
        """
        tidx = cols["tidx"]
        cols["priority"] = self._priorities[tidx]
        m = (cols["id"] >= self._warmup_tasks) & (cols["arrival"] >= self._warmup)
        self._all.merge(Tally.of(cols, m, end, sketch=True))
        for scopes, field in ((self._by_priority, "priority"), (self._by_type, "tidx")):
            values = cols[field]
            for v in np.unique(values[m]).tolist():
                part = Tally.of(cols, m & (values == v), end, sketch=True)
                if v in scopes:
                    scopes[v].merge(part)
                else:
                    scopes[v] = part
        done = m & (cols["state"] == DONE)
        self._hops = _grow(self._hops, np.bincount(cols["hops"][done].astype(np.int64)))
        self._agents = _grow(self._agents, np.bincount(cols["agent"][done].astype(np.int64)))
        if start is not None:
            self._area += in_system_area(cols, start, end)

    # -- TaskSummary ------------------------------------------------------------------
    def overall(self) -> Tally:
        return self._all

    def by_priority(self) -> list[tuple[int, Tally]]:
        return sorted(self._by_priority.items())

    def by_type(self, tidx: int) -> Tally:
        return self._by_type.get(tidx) or Tally(Sketch())

    def in_system_mean(self) -> float:
        span = self.end - self.start
        return self._area / span if span > 0 else float("nan")

    def hop_counts(self) -> np.ndarray:
        return self._hops

    def agent_done(self) -> np.ndarray:
        return self._agents

    def sojourn_quantiles(self) -> list[float]:
        """Sojourn quantiles at 0, 1, ..., 100 % of measured completed tasks."""
        return self._all.sojourn.quantiles(np.arange(101))


def _columns(rows: list[tuple[object, ...]]) -> dict[str, np.ndarray]:
    if not rows:
        return {name: np.empty(0, dtype=code) for name, code in COLUMNS}
    return {
        name: np.array(values, dtype=code)
        for (name, code), values in zip(COLUMNS, zip(*rows, strict=True), strict=True)
    }


class StreamRecorder(Recorder):
    """A recorder that keeps tallies of finished tasks instead of their columns."""

    def __init__(
        self,
        priorities: list[int],
        warmup_tasks: int,
        warmup: float,
        window_start: Callable[[], float | None],
    ) -> None:
        super().__init__()
        self.summary = StreamSummary(priorities, warmup_tasks, warmup)
        self._window_start = window_start

    def flush(self) -> None:
        buf = self._buf
        if not buf:
            return
        cols = flat_columns(buf)
        buf.clear()
        self.reduce(cols, self._window_start())

    def reduce(self, cols: dict[str, np.ndarray], start: float | None, end: float = _INF) -> None:
        """Merge a chunk of finished (or, last, live) tasks into the summary."""
        self.summary.add(cols, start, end)

    def finish(self, live: list[Task]) -> StreamSummary:
        """Reduce what is buffered, then the live tasks, against the final window."""
        self.flush()
        start = self._window_start()
        end = self.end_time
        start = end if start is None else start
        get = [name for name, _ in COLUMNS]
        self.reduce(_columns([tuple(getattr(t, n) for n in get) for t in live]), start, end)
        self.summary.start, self.summary.end = start, end
        return self.summary


class TracingStreamRecorder(StreamRecorder):
    """A streaming recorder that also writes each chunk of tasks to a task trace
    (``--trace``): the trace is on disk, not in memory, and the run's figures are
    the streamed ones, the same as the run's without a trace."""

    def __init__(
        self,
        priorities: list[int],
        warmup_tasks: int,
        warmup: float,
        window_start: Callable[[], float | None],
        sink: Any,
        agent_names: list[str],
        type_names: list[str],
    ) -> None:
        super().__init__(priorities, warmup_tasks, warmup, window_start)
        self.sink = sink
        self._agents = np.array([*agent_names, ""], dtype=object)
        self._types = np.array(type_names, dtype=object)
        self._warmup_tasks = warmup_tasks
        self._warmup = warmup

    def reduce(self, cols: dict[str, np.ndarray], start: float | None, end: float = _INF) -> None:
        super().reduce(cols, start, end)  # sets the chunk's priorities
        cols["measured"] = (cols["id"] >= self._warmup_tasks) & (cols["arrival"] >= self._warmup)
        self.sink.write(trace_rows(cols, self._agents, self._types))


_STATES = np.array(STATE_NAMES, dtype=object)


def trace_rows(
    cols: dict[str, np.ndarray], agents: np.ndarray, types: np.ndarray
) -> dict[str, np.ndarray]:
    """Task columns (with ``priority`` and ``measured``) as rows of the task trace:
    names for indexes, NaN for a start or end that never happened."""
    return {
        "task": cols["id"].astype(np.int64),
        "type": types[cols["tidx"]],
        "priority": cols["priority"].astype(np.int64),
        "arrival": cols["arrival"],
        "start": np.where(cols["start"] >= 0, cols["start"], np.nan),
        "end": np.where(cols["end"] >= 0, cols["end"], np.nan),
        "agent": agents[cols["agent"]],
        "attempts": cols["attempts"].astype(np.int64),
        "hops": cols["hops"].astype(np.int64),
        "handoff": cols["handoff"],
        "state": _STATES[cols["state"]],
        "deadline": cols["deadline"],
        "measured": cols["measured"],
    }

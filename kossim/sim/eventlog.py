"""The execution log: every message and decision of a traced run, with its reason.

Off unless the run is traced (``--trace``): the kernel then holds ``None``
instead of a log and no row is built. A row is ``(time, kind, task, actor,
src, dst, reason, fields)``; ``fields`` is a JSON object of whatever else
the actor said.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from kossim.sim.task import Task

if TYPE_CHECKING:
    from kossim.sim.kernel import Actor

__all__ = ["EVENT_COLUMNS", "EventLog"]

EVENT_COLUMNS = ("time", "kind", "task", "actor", "src", "dst", "reason", "fields")


class EventLog:
    """Rows of one run's execution log, in event order."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, str, int, str, str, str, str, str]] = []
        # Timers set (time, actor, kind, delay): compared by the conformance check, not
        # written out (heartbeat timers alone would outnumber every other row).
        self.timers: list[tuple[float, str, str, float]] = []

    def record(
        self, now: float, kind: str, actor: str, reason: str, task: Task | None, fields: Any
    ) -> None:
        task_id = task.id if task is not None else -1
        text = json.dumps(fields, sort_keys=True, default=str) if fields else ""
        self.rows.append((now, kind, task_id, actor, "", "", reason, text))

    def message(self, now: float, src: Actor, dst: Actor, kind: str, payload: Any) -> None:
        task_id = payload.id if isinstance(payload, Task) else -1
        if payload.__class__ is tuple and payload and isinstance(payload[0], Task):
            task_id = payload[0].id  # a protocol message about a task: (task, ...)
        where = "local" if src.node == dst.node else f"{src.node} -> {dst.node}"
        reason = f"{kind} from {src.name} to {dst.name} ({where})"
        self.rows.append((now, "send:" + kind, task_id, src.name, src.name, dst.name, reason, ""))

    def task(self, now: float, kind: str, task: Task, actor: str, reason: str) -> None:
        """A step of a task's life that the engine itself takes (arrive, start, end)."""
        self.rows.append((now, kind, task.id, actor, "", "", reason, ""))

    def columns(self) -> dict[str, np.ndarray]:
        cols = list(zip(*self.rows, strict=True)) if self.rows else [()] * len(EVENT_COLUMNS)
        out: dict[str, np.ndarray] = {}
        for name, values in zip(EVENT_COLUMNS, cols, strict=True):
            if name == "time":
                out[name] = np.asarray(values, dtype=np.float64)
            elif name == "task":
                out[name] = np.asarray(values, dtype=np.int64)
            else:
                out[name] = np.asarray(values, dtype=object)
        return out


class _NoTimers(list[tuple[float, str, str, float]]):
    """Timers are kept only for the conformance check's in-memory logs."""

    def append(self, item: tuple[float, str, str, float]) -> None:
        pass


class SpillingEventLog(EventLog):
    """An execution log that writes every ``CHUNK`` rows to ``sink`` (a Parquet writer of
    :data:`~kossim.sim.tracefile.EVENT_SCHEMA`) and forgets them: flat in run length."""

    CHUNK = 65_536

    def __init__(self, sink: Any) -> None:
        super().__init__()
        self.sink = sink
        self.timers = _NoTimers()

    def record(
        self, now: float, kind: str, actor: str, reason: str, task: Task | None, fields: Any
    ) -> None:
        super().record(now, kind, actor, reason, task, fields)
        if len(self.rows) >= self.CHUNK:
            self.spill()

    def message(self, now: float, src: Actor, dst: Actor, kind: str, payload: Any) -> None:
        super().message(now, src, dst, kind, payload)
        if len(self.rows) >= self.CHUNK:
            self.spill()

    def task(self, now: float, kind: str, task: Task, actor: str, reason: str) -> None:
        super().task(now, kind, task, actor, reason)
        if len(self.rows) >= self.CHUNK:
            self.spill()

    def spill(self) -> None:
        """Write the rows held so far as one row group."""
        if self.rows:
            self.sink.write(dict(zip(EVENT_COLUMNS, zip(*self.rows, strict=True), strict=True)))
            self.rows.clear()

"""Reading the execution log of a traced results folder (``events.parquet``).

``kossim trace DIR`` filters it by policy, seed, task, agent, kind and time
window; the report shows one task's whole life and a timeline of failures
and suspicions from the same table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kossim.errors import KossimInputError

__all__ = ["EventFilter", "filter_events", "life_of", "read_events", "scan_events"]

BATCH = 65_536
"""Rows of the log read at a time when filtering it."""

LIFECYCLE = (
    "arrive",
    "route",
    "start",
    "complete",
    "abandon",
    "preempt",
    "delegate",
    "refuse",
    "reject",
    "renege",
    "withdraw",
)
"""Kinds that tell a task's story (besides the messages that carry it)."""


@dataclass(frozen=True)
class EventFilter:
    """Which rows of the execution log to keep; ``None`` keeps all."""

    policy: str | None = None
    seed: int | None = None
    task: int | None = None
    agent: str | None = None
    """An actor named as the actor, the sender or the receiver of a row."""
    kinds: Sequence[str] = ()
    """Kinds to keep; ``send`` keeps every message, ``send:task`` one kind of message."""
    start: float | None = None
    end: float | None = None


def read_events(folder: Path, how: EventFilter | None = None) -> pd.DataFrame:
    """The folder's execution log (only the rows ``how`` keeps, in time order, when
    given), or an input error saying how to record one."""
    path = Path(folder) / "events.parquet"
    if not path.is_file():
        raise KossimInputError.single(
            "no execution log here: run the experiment with --trace to record events.parquet",
            file=str(folder),
        )
    if how is None:
        return pd.read_parquet(path)
    return scan_events(path, how)


def scan_events(path: Path, how: EventFilter) -> pd.DataFrame:
    """The rows of the log at ``path`` that match ``how``, in time order, read a row group
    at a time: the memory held is what matches, not the whole log."""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    parts = [
        kept
        for batch in source.iter_batches(batch_size=BATCH)
        if len(kept := filter_events(batch.to_pandas(), how))
    ]
    if not parts:
        return source.schema_arrow.empty_table().to_pandas()
    return pd.concat(parts, ignore_index=True).sort_values("time", kind="stable")


def filter_events(events: pd.DataFrame, how: EventFilter) -> pd.DataFrame:
    """Rows of ``events`` that match ``how``, in time order."""
    keep = pd.Series(True, index=events.index)
    if how.policy is not None:
        keep &= events["policy"] == how.policy
    if how.seed is not None:
        keep &= events["seed"] == how.seed
    if how.task is not None:
        keep &= events["task"] == how.task
    if how.agent is not None:
        keep &= (
            (events["actor"] == how.agent)
            | (events["src"] == how.agent)
            | (events["dst"] == how.agent)
        )
    if how.kinds:
        kind = events["kind"].astype(str)
        wanted = pd.Series(False, index=events.index)
        for k in how.kinds:
            wanted |= (kind == k) | kind.str.startswith(k + ":")
        keep &= wanted
    if how.start is not None:
        keep &= events["time"] >= how.start
    if how.end is not None:
        keep &= events["time"] <= how.end
    return events[keep].sort_values("time", kind="stable")


def life_of(events: pd.DataFrame) -> tuple[str, int, int] | None:
    """The (policy, seed, task) whose life the report shows: of the first policy and seed,
    the task with the most steps (a retried or copied task tells the most), ties to the
    earliest."""
    tasks = events[events["task"] >= 0]
    if tasks.empty:
        return None
    first = tasks.iloc[0]
    run = tasks[(tasks["policy"] == first["policy"]) & (tasks["seed"] == first["seed"])]
    steps = run.groupby("task").size()
    task = int(steps[steps == steps.max()].index.min())
    return str(first["policy"]), int(first["seed"]), task

"""A traced run's task trace and execution log, streamed to Parquet as the run goes.

``--trace`` keeps a row per task and several per message and decision; held
in memory until the run ends, a long traced run would grow without bound. A
:class:`TraceWriter` writes each chunk of rows as a Parquet row group the
moment it is full, so a traced run holds one chunk at a time, to a *spill*
file next to the run's final files (the sweep's local executors: the store
then renames it into place) or, when the run's process may not share a file
system with the store (Dask), to an in-memory Parquet buffer that travels
back with the result, compressed.

A finished writer gives a :class:`Trace`: a read-only mapping of column name
to numpy array that reads a column from the Parquet data when asked, so
``result.tasks["agent"]`` works in process as before.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["EVENT_SCHEMA", "TASK_SCHEMA", "Trace", "TraceWriter"]

TASK_SCHEMA = pa.schema(
    [
        ("task", pa.int64()),
        ("type", pa.string()),
        ("priority", pa.int64()),
        ("arrival", pa.float64()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("agent", pa.string()),
        ("attempts", pa.int64()),
        ("hops", pa.int64()),
        ("handoff", pa.float64()),
        ("state", pa.string()),
        ("deadline", pa.float64()),
        ("measured", pa.bool_()),
    ]
)
"""The task trace: one row per task, in the order tasks ended (live tasks last)."""

EVENT_SCHEMA = pa.schema(
    [
        ("time", pa.float64()),
        ("kind", pa.string()),
        ("task", pa.int64()),
        ("actor", pa.string()),
        ("src", pa.string()),
        ("dst", pa.string()),
        ("reason", pa.string()),
        ("fields", pa.string()),
    ]
)
"""The execution log: one row per message, decision and step of a task's life."""


class Trace(Mapping[str, np.ndarray]):
    """One finished trace file: a Parquet file on disk (``path``) or in memory (``data``).

    Columns are read on demand and kept once read; the object pickles as the
    path or the bytes, never as the columns.
    """

    def __init__(self, path: str | None = None, data: bytes | None = None) -> None:
        self.path = path
        self.data = data
        self._cache: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "data": self.data}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["data"])  # type: ignore[misc]

    def _source(self) -> Any:
        return self.path if self.path is not None else pa.BufferReader(self.data)

    @property
    def schema(self) -> pa.Schema:
        return pq.read_schema(self._source())

    @property
    def num_rows(self) -> int:
        return int(pq.ParquetFile(self._source()).metadata.num_rows)

    def table(self) -> pa.Table:
        return pq.read_table(self._source())

    def __getitem__(self, name: str) -> np.ndarray:
        got = self._cache.get(name)
        if got is None:
            if name not in self.schema.names:
                raise KeyError(name)
            column = pq.read_table(self._source(), columns=[name]).column(0)
            got = self._cache[name] = column.to_numpy(zero_copy_only=False)
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(self.schema.names)

    def __len__(self) -> int:
        return len(self.schema.names)

    def discard(self) -> None:
        """Remove the spill file (a run that failed after writing part of it)."""
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


class TraceWriter:
    """Writes rows of ``schema`` a row group at a time, to ``path`` or to memory."""

    def __init__(self, schema: pa.Schema, path: Path | None = None) -> None:
        self.schema = schema
        self.path = path
        self._sink: Any = pa.OSFile(str(path), "wb") if path else pa.BufferOutputStream()
        self._writer = pq.ParquetWriter(self._sink, schema)

    def write(self, columns: Mapping[str, Any]) -> None:
        """Append one chunk of rows (name -> sequence of values, every column of the schema)."""
        self._writer.write_table(pa.table(dict(columns), schema=self.schema))

    def close(self) -> Trace:
        self._writer.close()
        if self.path is not None:
            self._sink.close()
            return Trace(path=str(self.path))
        return Trace(data=bytes(self._sink.getvalue().to_pybytes()))

    def abort(self) -> None:
        """Close and remove what was written (the run failed)."""
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(Exception):
            self._sink.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

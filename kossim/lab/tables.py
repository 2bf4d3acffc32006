"""The sweep's results tables built on pyarrow and plain Python, without pandas.

``kossim run`` stores, aggregates and summarises its runs with this module
only: pandas costs about 75 MiB of imports, more than a whole untraced run
of any length, so it is loaded only where results are analysed (the report,
``kossim compare``, notebooks). The files keep what pandas wrote before,
byte for byte:

- a table's columns have the types ``DataFrame.to_parquet`` gave them (text
  as ``large_string``, NaN floats as nulls) and the same ``pandas`` schema
  metadata, so ``pandas.read_parquet`` still gives the same dtypes;
- CSV text is what ``DataFrame.to_csv`` wrote (Python's ``csv`` writer, floats
  as their shortest round-trip text, missing values empty);
- swept columns are typed as pandas typed them (:func:`typed_column`);
- ``summary.csv`` groups and orders as ``summarize`` did, with the arithmetic
  of pandas' grouped mean (compensated sum) and standard deviation
  (Welford's update), so its figures keep every bit (:func:`summary_table`).

pyarrow imports pandas on its own, to recognise pandas objects, the first
time it converts anything: ``kossim run`` answers that first look with "no
pandas" (:func:`pyarrow_without_pandas`). Code on that path then builds
arrays with explicit types (type inference asks pandas too), reads Parquet
with ``ParquetFile`` (``pq.read_table`` loads the dataset module, which
imports pandas) and takes values out with ``to_pylist`` (``to_numpy`` of a
column converts through pandas' machinery).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.lib
import pyarrow.parquet as pq

__all__ = [
    "csv_bytes",
    "json_text",
    "missing",
    "nan_key",
    "pandas_for_pyarrow",
    "parquet_bytes",
    "pyarrow_without_pandas",
    "repeat_rows",
    "scalar_column",
    "summary_table",
    "tidy",
    "typed_column",
]

SUMMARY_STATS = ("mean", "std", "ci_low", "ci_high", "n")

_PANDAS_TYPES = {
    pa.large_string(): ("object", "str"),
    pa.string(): ("object", "str"),
    pa.int64(): ("int64", "int64"),
    pa.float64(): ("float64", "float64"),
    pa.bool_(): ("bool", "bool"),
}


class _NoPandas:
    """A meta path finder that refuses to import pandas."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is not loaded while kossim run stores results")


@contextmanager
def pyarrow_without_pandas() -> Iterator[None]:
    """pyarrow's first look for pandas, answered "not installed" (when pandas is not
    loaded yet), so its conversions inside do not import it.

    pyarrow asks once, quietly; a conversion that needs pandas (``to_pandas``,
    ``from_pandas``) asks again and then loads it. On the way out, if pandas
    was loaded meanwhile, pyarrow is told, so it recognises pandas objects
    again. Only the first look is refused: code inside may import pandas.
    """
    shim = getattr(pyarrow.lib, "_pandas_api", None)
    if "pandas" in sys.modules or shim is None:
        yield
        return
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        shim.have_pandas  # noqa: B018 - the quiet first look, refused
    finally:
        sys.meta_path.remove(finder)
    try:
        yield
    finally:
        if "pandas" in sys.modules:
            pandas_for_pyarrow()


def pandas_for_pyarrow() -> None:
    """Load pandas and have pyarrow take it up (after :func:`pyarrow_without_pandas`,
    pyarrow would otherwise not recognise pandas objects until it next converts to or
    from pandas)."""
    shim = getattr(pyarrow.lib, "_pandas_api", None)
    if shim is not None:
        shim.compat  # noqa: B018 - pyarrow's loud look: it imports pandas and keeps it


def json_text(value: Any) -> Any:
    """Non-scalar swept values (a distribution, a list) become compact JSON text."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return value


def typed_column(values: Sequence[Any]) -> pa.Array:
    """One swept column with its YAML type, as pandas inferred it from the values.

    Booleans stay ``bool`` and integers ``int64``; numbers with a float among
    them, or with a missing value, become ``float64`` (missing as null); text
    alone, or text with missing values, stays text with nulls. Any other mix
    (booleans with numbers or missing values, text with numbers, integers
    beyond 64 bits, nothing but missing values) becomes text, a missing value
    spelled ``null``.
    """
    cells = [json_text(v) for v in values]
    present = [v for v in cells if not missing(v)]
    gaps = len(present) < len(cells)
    if present and all(isinstance(v, bool) for v in present) and not gaps:
        return pa.array(cells, pa.bool_())
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
    if present and numeric:
        if all(isinstance(v, int) for v in present) and not gaps:
            if all(-(2**63) <= v < 2**63 for v in present):
                return pa.array(cells, pa.int64())
        elif all(not isinstance(v, int) or abs(v) < 2**63 for v in present):
            floats = [math.nan if v is None else float(v) for v in cells]
            return pa.array(floats, pa.float64(), from_pandas=True)
    if present and all(isinstance(v, str) for v in present):
        return pa.array([None if missing(v) else v for v in cells], pa.large_string())
    return pa.array(["null" if v is None else str(v) for v in cells], pa.large_string())


def missing(value: Any) -> bool:
    """A missing cell: ``None`` (a null) or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def tidy(table: pa.Table) -> pa.Table:
    """``table`` with the column types a pandas round trip gives: text as ``large_string``,
    NaN floats as nulls."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type):
            column = column.cast(pa.large_string())
        elif pa.types.is_floating(column.type):
            chunks = [_nan_as_null(chunk) for chunk in column.chunks]
            column = pa.chunked_array(chunks, column.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _nan_as_null(chunk: pa.Array) -> pa.Array:
    return pc.if_else(pc.is_nan(chunk), pa.scalar(None, chunk.type), chunk)


def scalar_column(value: Any, n: int) -> pa.Array:
    """``value`` repeated ``n`` times, typed as pyarrow infers it (no inference: see above)."""
    kind = (
        pa.null()
        if value is None or n == 0
        else pa.bool_()
        if isinstance(value, bool)
        else pa.int64()
        if isinstance(value, int) and -(2**63) <= value < 2**63
        else pa.float64()
        if isinstance(value, float)
        else pa.string()
        if isinstance(value, str)
        else None
    )
    return pa.array([value] * n, kind)


def repeat_rows(keys: pa.Table, counts: Sequence[int], body: pa.Table) -> pa.Table:
    """``body`` with each run's key row (``keys`` row ``i``) prefixed ``counts[i]`` times."""
    which = np.repeat(np.arange(keys.num_rows), np.asarray(counts, dtype=np.int64))
    prefix = keys.take(pa.array(which, pa.int64()))
    return pa.Table.from_arrays(
        [*prefix.columns, *body.columns], names=[*keys.column_names, *body.column_names]
    )


def _pandas_metadata(schema: pa.Schema) -> bytes:
    """The ``pandas`` schema metadata ``DataFrame.to_parquet`` (no index) wrote."""
    columns = []
    for f in schema:
        pandas_type, numpy_type = _PANDAS_TYPES[f.type]
        columns.append(
            {
                "name": f.name,
                "field_name": f.name,
                "pandas_type": pandas_type,
                "numpy_type": numpy_type,
                "metadata": None,
            }
        )
    try:
        pandas_version = version("pandas")
    except PackageNotFoundError:  # pragma: no cover - pandas is a dependency
        pandas_version = None
    meta = {
        "index_columns": [],
        "column_indexes": [],
        "columns": columns,
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": pandas_version,
    }
    return json.dumps(meta).encode()


def parquet_bytes(table: pa.Table, pandas_meta: bool = True) -> bytes:
    """Parquet bytes of ``table``; with ``pandas_meta``, as a DataFrame of it was written."""
    if pandas_meta:
        table = table.replace_schema_metadata({"pandas": _pandas_metadata(table.schema)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _float_text(value: float | None) -> str:
    """Shortest text that reads back as the same float; missing values empty."""
    return "" if value is None or math.isnan(value) else repr(float(value))


def csv_bytes(table: pa.Table) -> bytes:
    """The CSV text ``DataFrame.to_csv(index=False)`` wrote, floats at full precision."""
    columns: list[list[Any]] = []
    for column in table.columns:
        values = column.to_pylist()
        if pa.types.is_floating(column.type):
            columns.append([_float_text(v) for v in values])
        else:
            columns.append(["" if v is None else v for v in values])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(table.column_names)
    writer.writerows(zip(*columns, strict=True))
    return buffer.getvalue().encode()


def _grouped_stats(values: list[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation and count of the non-NaN ``values``, with pandas'
    grouped arithmetic: a Kahan-compensated sum for the mean, Welford's update for the
    variance, in row order."""
    total = compensation = mean = m2 = 0.0
    n = 0
    for value in values:
        if math.isnan(value):
            continue
        n += 1
        y = value - compensation
        t = total + y
        compensation = t - total - y
        if compensation != compensation:  # an infinite value: keep the infinite sum
            compensation = 0.0
        total = t
        old = mean
        mean += (value - old) / n
        m2 += (value - mean) * (value - old)
    average = total / n if n else math.nan
    std = math.sqrt(m2 / (n - 1)) if n > 1 else math.nan
    return average, std, n


def summary_table(metrics: pa.Table, by: list[str], level: float = 0.95) -> pa.Table:
    """``summary.csv`` of tidy metric rows: groups of the ``by`` columns ordered by each
    column's first-seen values in turn (policies in file order, sweep points in sweep
    order), then ``mean``, ``std``, the Student-t ``ci_low``/``ci_high`` and ``n``."""
    from kossim.analysis.stats import t_halfwidth

    keys = [metrics.column(c).to_pylist() for c in by]
    codes: list[list[int]] = []
    for values in keys:
        seen: dict[Any, int] = {}
        codes.append([seen.setdefault(nan_key(v), len(seen)) for v in values])
    values = [math.nan if v is None else float(v) for v in metrics.column("value").to_pylist()]
    groups: dict[tuple[int, ...], list[float]] = {}
    first: dict[tuple[int, ...], int] = {}
    for i, code in enumerate(zip(*codes, strict=True)):
        groups.setdefault(code, []).append(values[i])
        first.setdefault(code, i)
    order = sorted(groups)
    stats = [_grouped_stats(groups[code]) for code in order]
    mean = np.array([s[0] for s in stats], dtype=float)
    std = np.array([s[1] for s in stats], dtype=float)
    n = np.array([s[2] for s in stats], dtype=np.int64)
    half = t_halfwidth(std, n, level)
    rows = [first[code] for code in order]
    out = metrics.select(by).take(pa.array(rows, pa.int64()))
    for name, column in (
        ("mean", mean),
        ("std", std),
        ("ci_low", mean - half),
        ("ci_high", mean + half),
    ):
        out = out.append_column(name, pa.array(column, pa.float64(), from_pandas=True))
    return out.append_column("n", pa.array(n, pa.int64()))


def nan_key(value: Any) -> Any:
    """A grouping key in which every missing value is one key, as ``pandas.factorize``
    (and ``groupby(dropna=False)``) puts them together."""
    return ("nan",) if missing(value) else value

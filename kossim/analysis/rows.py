"""Results tables as rows, for judging expectations without pandas.

``kossim run`` checks its ``expect:`` block right after the sweep; pandas
would cost the process about 40 MiB of imports for a handful of groupings.
The judges of :mod:`kossim.analysis.check` work on :data:`Rows` (column
names and one ``dict`` per row, missing values as NaN, as pandas reads them)
with the few operations here, each doing what the pandas code before it did:
groups in first-seen order, pandas' mean of a column, the paired comparison
of :func:`kossim.analysis.stats.paired_difference` and the row matching of
:func:`kossim.analysis.stats.compare_summaries`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow.parquet as pq

from kossim.analysis.stats import (
    METRIC_COLUMNS,
    SUMMARY_COLUMNS,
    PairedDifference,
    _bootstrap,
    _check_level,
    _clean,
    canonical,
    paired_t,
)
from kossim.lab.tables import missing, nan_key

__all__ = [
    "Rows",
    "column",
    "compare_rows",
    "group_rows",
    "nan_mean",
    "paired_rows",
    "read_metrics",
    "rows_of",
    "swept_of",
]

Rows = tuple[list[str], list[dict[str, Any]]]
"""A table as its column names and its rows."""

_NON_SWEPT = frozenset(METRIC_COLUMNS) | frozenset(SUMMARY_COLUMNS)


def rows_of(table: Any) -> Rows:
    """``table`` as :data:`Rows`: a DataFrame's records, or rows as they are."""
    if isinstance(table, tuple):
        return table
    return [str(c) for c in table.columns], table.to_dict("records")


def read_metrics(path: Path) -> Rows:
    """``metrics.parquet`` as rows (pyarrow alone; missing values NaN, as pandas reads them)."""
    table = pq.ParquetFile(path).read()  # not read_table: see kossim.lab.tables
    names = table.column_names
    columns = [[math.nan if v is None else v for v in c.to_pylist()] for c in table.columns]
    return names, [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def column(table: Rows, name: str) -> list[Any]:
    return [row[name] for row in table[1]]


def swept_of(table: Rows) -> list[str]:
    """Swept-path columns, in column order (whatever is not a fixed column)."""
    return [c for c in table[0] if c not in _NON_SWEPT]


def group_rows(
    rows: list[dict[str, Any]], keys: list[str], dropna: bool
) -> list[tuple[tuple[Any, ...], list[dict[str, Any]]]]:
    """Rows grouped by their ``keys`` values, groups in first-seen order (pandas'
    ``groupby(sort=False)``); with ``dropna``, rows with a missing key are left out."""
    groups: dict[tuple[Any, ...], tuple[tuple[Any, ...], list[dict[str, Any]]]] = {}
    for row in rows:
        values = tuple(row[k] for k in keys)
        if dropna and any(missing(v) for v in values):
            continue
        found = groups.setdefault(tuple(nan_key(v) for v in values), (values, []))
        found[1].append(row)
    return list(groups.values())


def nan_mean(values: list[float]) -> float:
    """Mean of the non-NaN values, summed as pandas' ``Series.mean`` sums them."""
    arr = np.asarray(values, dtype=float).copy()
    mask = np.isnan(arr)
    arr[mask] = 0.0
    count = int((~mask).sum())
    return float(arr.sum() / count) if count else math.nan


def _seed_values(rows: list[dict[str, Any]], policy: str) -> dict[Any, float]:
    return {r["seed"]: float(r["value"]) for r in rows if r["policy"] == policy}


def paired_rows(
    rows: list[dict[str, Any]],
    metric: str,
    scope: str,
    a: str,
    b: str,
    keys: list[str],
    level: float = 0.95,
    method: Literal["t", "bootstrap"] = "t",
    n_boot: int = 10_000,
    seed: int = 0,
) -> list[PairedDifference]:
    """:func:`kossim.analysis.stats.paired_difference` on rows: per sweep point (first-seen
    order), the per-seed differences ``a - b`` paired on seed."""
    _check_level(level)
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method must be 't' or 'bootstrap' (got {method!r})")
    chosen = [
        r for r in rows if r["metric"] == metric and r["scope"] == scope and r["policy"] in (a, b)
    ]
    seen: set[tuple[Any, ...]] = set()
    for r in chosen:
        key = tuple(nan_key(r[k]) for k in [*keys, "seed", "policy"])
        if key in seen:
            raise ValueError(f"several rows per (policy, point, seed) for {metric!r}/{scope!r}")
        seen.add(key)
    points = group_rows(chosen, keys, dropna=False) if keys else [((), chosen)] if chosen else []
    results: list[PairedDifference] = []
    for values, group in points:
        value_a, value_b = _seed_values(group, a), _seed_values(group, b)
        if list(value_a) == list(value_b):  # the same seeds in the same order: no alignment
            seeds = list(value_a)
        else:  # aligned on the sorted union of seeds, unmatched seeds NaN
            seeds = sorted(set(value_a) | set(value_b))
        raw = [value_a.get(s, math.nan) - value_b.get(s, math.nan) for s in seeds]
        diffs = _clean(raw)
        if method == "t":
            low, high, p_value = paired_t(diffs, level)
        else:
            low, high, p_value = _bootstrap(diffs, level, n_boot, seed)
        mean = float(diffs.mean()) if diffs.size else math.nan
        point = dict(zip(keys, values, strict=True))
        results.append(
            PairedDifference(point, mean, low, high, p_value, int(diffs.size), method, level)
        )
    return results


def _keyed(table: Rows, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Rows by the canonical text of their key columns (the first of each), in order."""
    out: dict[str, dict[str, Any]] = {}
    for row in table[1]:
        out.setdefault("\x1f".join(canonical(row[k]) for k in keys), row)
    return out


def _interval(row: dict[str, Any] | None) -> tuple[float, float, float]:
    """Mean and CI, a missing CI (one seed) collapsing onto the mean."""
    if row is None:
        return math.nan, math.nan, math.nan
    mean, low, high = (float(row[c]) for c in ("mean", "ci_low", "ci_high"))
    return mean, mean if math.isnan(low) else low, mean if math.isnan(high) else high


def compare_rows(stored: Rows, new: Rows, rel: float = 0.0) -> list[dict[str, Any]]:
    """:func:`kossim.analysis.stats.compare_summaries` on rows: one row per stored row
    (its key columns, ``stored_*`` and ``new_*`` intervals, ``new_n``, ``status``)."""
    swept = swept_of(stored)
    if set(swept) != set(swept_of(new)):
        raise ValueError(f"swept columns differ: {swept} vs {swept_of(new)}")
    keys = ["policy", *swept, "metric", "scope"]
    fresh = _keyed(new, keys)
    out = []
    for key, row in _keyed(stored, keys).items():
        other = fresh.get(key)
        old_mean, old_lo, old_hi = _interval(row)
        new_mean, new_lo, new_hi = _interval(other)
        overlap = new_lo <= old_hi and old_lo <= new_hi
        slack = rel * abs(old_mean) + 1e-9 * max(abs(old_mean), 1.0)
        if math.isnan(old_mean):
            slack = math.nan
        close = abs(new_mean - old_mean) <= slack
        agree = overlap or close or (math.isnan(old_mean) and math.isnan(new_mean))
        new_n = math.nan if other is None else float(other["n"])
        status = "missing" if missing(new_n) else "agree" if agree else "differs"
        out.append(
            {
                **{k: row[k] for k in keys},
                "stored_mean": old_mean,
                "stored_ci_low": old_lo,
                "stored_ci_high": old_hi,
                "new_mean": new_mean,
                "new_ci_low": new_lo,
                "new_ci_high": new_hi,
                "new_n": new_n,
                "status": status,
            }
        )
    return out

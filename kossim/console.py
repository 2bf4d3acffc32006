"""What ``kossim run`` prints about a results folder: the summary table and failed runs.

The table is meant for an 80-column CI log as much as for a terminal: one
row per policy and sweep point, one column per key metric (mean ± 95 %
half-width), swept paths shortened to their last segment (the caption says
what each stands for). Runs that failed are counted in the table, so a
policy whose runs all failed still has its row, and each failed run gets a
line with its policy, point, seed and the exception that ended it.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

__all__ = [
    "KEY_METRICS",
    "failure_lines",
    "plural",
    "read_summary",
    "short_paths",
    "summary_table",
]

KEY_METRICS = ("sojourn_mean", "wait_mean", "throughput", "utilization")
_NOT_SWEPT = {"policy", "metric", "scope", "mean", "std", "ci_low", "ci_high", "n"}


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``0 policies`` (with ``plural_form``)."""
    return f"{n} {noun if n == 1 else plural_form or noun + 's'}"


def short_paths(paths: list[str]) -> dict[str, str]:
    """Each dotted path by its shortest distinct tail: ``rate`` for
    ``scenario.workload.arrivals.rate`` unless another path also ends in ``rate``."""
    short: dict[str, str] = {}
    for path in paths:
        parts = path.split(".")
        for k in range(1, len(parts) + 1):
            tail = ".".join(parts[-k:])
            if sum(1 for p in paths if p == tail or p.endswith("." + tail)) == 1:
                break
        short[path] = tail
    return short


def _cell(mean: float, high: float) -> str:
    half = high - mean
    if not math.isfinite(half):
        return f"{mean:.3g}"
    return f"{mean:.3g} ±{half:.2g}"


def _norm(value: Any) -> str:
    """A swept value as the same text whether it comes from the manifest or a CSV
    (where ``6`` may read back as ``6.0`` and a mapping is JSON text)."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    if isinstance(value, bool | str):
        return str(value)
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


def _point_key(point: Mapping[Any, Any], swept: list[str]) -> tuple[str, ...]:
    return tuple(_norm(point.get(path)) for path in swept)


Key = tuple[str, tuple[str, ...]]
"""(policy, normalised sweep point)."""

Rows = tuple[list[str], list[dict[str, Any]]]
"""A table as its column names and its rows."""

_NA = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
"""Cells ``pandas.read_csv`` reads as missing."""
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|Inf|INF|infinity|Infinity)")
_BOOL = {"True": True, "TRUE": True, "true": True, "False": False, "FALSE": False, "false": False}


def read_summary(path: Path) -> Rows:
    """``summary.csv`` as its columns and rows, each column typed as ``pandas.read_csv``
    types it (integers, floats, booleans or text; missing cells NaN), without pandas."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        names = next(reader, [])
        body = list(reader)
    columns = [_typed([row[i] if i < len(row) else "" for row in body]) for i in range(len(names))]
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    return names, rows


def _typed(cells: list[str]) -> list[Any]:
    """One CSV column's values, typed by what every present cell spells."""
    present = [c for c in cells if c not in _NA]
    missing = len(present) < len(cells)
    if all(_INT.fullmatch(c) for c in present) and not missing:
        return [int(c) for c in cells]
    if all(_INT.fullmatch(c) or _FLOAT.fullmatch(c) for c in present):
        return [math.nan if c in _NA else float(c) for c in cells]
    if all(c in _BOOL for c in present):
        return [math.nan if c in _NA else _BOOL[c] for c in cells]
    return [math.nan if c in _NA else c for c in cells]


def summary_table(title: str, summary: Rows, manifest: dict[str, Any]) -> Table:
    """Key metrics per policy and sweep point, with failed runs counted; ``summary`` is
    :func:`read_summary` of ``summary.csv``."""
    swept = [c for c in summary[0] if c not in _NOT_SWEPT]
    cells, shown = _cells(summary[1], swept)
    runs = manifest.get("runs") or []
    keys: list[Key] = []
    for r in runs:
        raw = r.get("point") or {}
        keys.append((str(r["policy"]), _point_key(raw, swept)))
        shown.setdefault(keys[-1][1], [str(raw.get(c)) for c in swept])
    failed = Counter(k for r, k in zip(runs, keys, strict=True) if r.get("status") == "failed")
    metrics = [m for m in KEY_METRICS if any(m in c for c in cells.values())] or list(KEY_METRICS)
    table = _frame(title, swept, metrics, bool(failed))
    for key in dict.fromkeys(keys) or cells:
        found, n_failed = cells.get(key, {}), failed.get(key, 0)
        absent = "failed" if n_failed else "-"
        values = [_cell(found[m]["mean"], found[m]["ci_high"]) if m in found else absent
                  for m in metrics]  # fmt: skip
        n = int(next(iter(found.values()))["n"]) if found else 0
        count = f"{n}/{n + n_failed}" if n_failed else str(n)
        table.add_row(key[0], *shown.get(key[1], key[1]), *values, count)
    return table


def _cells(
    summary: list[dict[str, Any]], swept: list[str]
) -> tuple[dict[Key, dict[str, Any]], dict[tuple[str, ...], list[str]]]:
    """Summary rows of the key metrics by (policy, point) and metric; each point as shown."""
    cells: dict[Key, dict[str, Any]] = {}
    shown: dict[tuple[str, ...], list[str]] = {}
    for d in summary:
        if d["scope"] != "all" or d["metric"] not in KEY_METRICS:
            continue
        point = _point_key(d, swept)
        shown.setdefault(point, [str(d[c]) for c in swept])
        cells.setdefault((str(d["policy"]), point), {})[str(d["metric"])] = d
    return cells, shown


def _frame(title: str, swept: list[str], metrics: list[str], any_failed: bool) -> Table:
    """The empty table: narrow (no vertical rules), swept paths by their short names."""
    names = short_paths(swept)
    notes = [f"{names[p]} = {p}" for p in swept if names[p] != p]
    table = Table(
        title=f"{title}: mean ±95 % CI half-width over seeds",
        caption="; ".join([*notes, *(["n = runs ok / runs"] if any_failed else [])]) or None,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for col in ["policy", *[names[p] for p in swept], *metrics, "n"]:
        table.add_column(col, overflow="fold")
    return table


def failure_lines(manifest: dict[str, Any], limit: int = 5) -> list[str]:
    """One line per failed run: policy, point, seed and the exception (first ``limit``)."""
    failed = [r for r in manifest.get("runs") or [] if r.get("status") == "failed"]
    lines = []
    for r in failed[:limit]:
        raw = r.get("point") or {}
        names = short_paths(list(raw))
        point = ", ".join(f"{names[p]}={v}" for p, v in raw.items())
        where = f"policy {r['policy']}" + (f" at {point}" if point else "")
        lines.append(f"failed: {where}, seed {r['seed']}: {_last_line(r.get('error'))}")
    if len(failed) > limit:
        lines.append(f"... and {plural(len(failed) - limit, 'more failed run')}")
    return lines


def _last_line(error: str | None) -> str:
    """The exception line that ends a traceback."""
    lines = [line.strip() for line in (error or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error recorded"

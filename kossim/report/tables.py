"""Tables of the report as plain data, rendered alike to HTML and Markdown.

A table is a title, column headers and rows of cells; a cell knows whether it
is the best of its row (bold with a star) or carries a verdict class. Keeping
formatting here, not in templates, makes both outputs say the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from kossim.report import metrics_meta as mm
from kossim.report.fmt import MINUS, MISSING, fmt_ci, fmt_num, fmt_p
from kossim.report.inference import PairedDifference, paired_difference
from kossim.report.load import ResultsData
from kossim.report.verdicts import MIN_EFFECT, Judge

__all__ = [
    "PAIRED_METRICS",
    "Cell",
    "Table",
    "metric_tables",
    "paired_tables",
    "scope_tables",
]

PAIRED_METRICS: tuple[str, ...] = (
    "sojourn_mean",
    "sojourn_p95",
    "wait_mean",
    "throughput",
    "utilization",
    "deadline_miss_rate",
)

Stat = tuple[float, float, float]
"""``(mean, ci_low, ci_high)`` of one policy at one point for one metric and scope."""


@dataclass(frozen=True)
class Cell:
    """One table cell; ``best`` marks the winning policy, ``css`` a verdict class."""

    text: str
    best: bool = False
    css: str = ""


@dataclass
class Table:
    """A titled table of cells; ``note`` is a one-line caption under it."""

    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""
    n_labels: int = 1
    """Leading columns that label a row (left-aligned); the rest hold numbers."""


def _stats(summary: pd.DataFrame, scope: str) -> dict[tuple[str, str, str], Stat]:
    """``(policy, point, metric) -> (mean, ci_low, ci_high)`` for one scope."""
    rows = summary[summary["scope"] == scope]
    keys = zip(rows["policy"], rows["point"], rows["metric"], strict=True)
    values = zip(rows["mean"], rows["ci_low"], rows["ci_high"], strict=True)
    return {k: (float(a), float(b), float(c)) for k, (a, b, c) in zip(keys, values, strict=True)}


def _policy_cells(
    stats: Mapping[tuple[str, str, str], Stat],
    policies: list[str],
    point: str,
    metric: str,
    winners: set[str],
) -> list[Cell]:
    """Mean ± half-width per policy, the significant winner (if any) marked."""
    found = {p: stats[(p, point, metric)] for p in policies if (p, point, metric) in stats}
    return [
        Cell(fmt_ci(*found[p]), best=p in winners) if p in found else Cell(MISSING)
        for p in policies
    ]


def _direction_text(sign: int) -> str:
    return {-1: "lower is better", 1: "higher is better"}.get(sign, "no best (neutral)")


def metric_tables(
    data: ResultsData, metrics: Iterable[str], title: str = "", judge: Judge | None = None
) -> list[Table]:
    """Mean ± 95 % CI half-width per policy at scope ``all``.

    Without a sweep, one table with a row per metric; with one, a table per
    metric with a row per sweep point, so the winner is marked per point (only
    where it beats every other policy significantly: :class:`Judge`).
    """
    assert data.summary is not None
    stats = _stats(data.summary, "all")
    meta = data.metrics_meta
    judge = judge or Judge(data.metrics, data.policies)
    metrics = [m for m in metrics if any(k[2] == m for k in stats)]
    if not data.swept:
        table = Table(title, ["metric", "meaning", *data.policies], n_labels=2)
        for metric in metrics:
            sign = mm.direction(metric, meta)
            head = [Cell(metric), Cell(f"{mm.axis_label(metric, meta)}; {_direction_text(sign)}")]
            winners = judge.winners(metric, "all", "", sign)
            table.rows.append(head + _policy_cells(stats, data.policies, "", metric, winners))
        return [table] if metrics else []
    tables = []
    for metric in metrics:
        sign = mm.direction(metric, meta)
        table = Table(
            f"{metric}: {mm.axis_label(metric, meta)}; {_direction_text(sign)}",
            ["sweep point", *data.policies],
        )
        for point in data.points:
            winners = judge.winners(metric, "all", point, sign)
            cells = _policy_cells(stats, data.policies, point, metric, winners)
            if any(c.text != MISSING for c in cells):
                table.rows.append([Cell(point), *cells])
        tables.append(table)
    return tables


def _scope_sort_key(scope: str) -> tuple[int, float, str]:
    """Numeric tiers in numeric order, other names alphabetically."""
    value = scope.split("=", 1)[1]
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def scope_tables(
    data: ResultsData, prefix: str, what: str, judge: Judge | None = None
) -> list[Table]:
    """Per-slice tables (``priority=`` or ``type=``) of the scope metrics."""
    if data.summary is None:
        return []
    judge = judge or Judge(data.metrics, data.policies)
    scopes = [s for s in pd.unique(data.summary["scope"]) if str(s).startswith(prefix)]
    scopes = sorted((str(s) for s in scopes), key=_scope_sort_key)
    by_scope = {scope: _stats(data.summary, scope) for scope in scopes}
    tables = []
    for metric in mm.SCOPE_METRICS:
        sign = mm.direction(metric, data.metrics_meta)
        head = (["sweep point"] if data.swept else []) + [what]
        table = Table(
            f"{metric} per {what}: {mm.axis_label(metric)}",
            [*head, *data.policies],
            n_labels=len(head),
        )
        for point in data.points:
            for scope in scopes:
                winners = judge.winners(metric, scope, point, sign)
                cells = _policy_cells(by_scope[scope], data.policies, point, metric, winners)
                if all(c.text == MISSING for c in cells):
                    continue
                lead = ([Cell(point)] if data.swept else []) + [Cell(scope.split("=", 1)[1])]
                table.rows.append(lead + cells)
        if table.rows:
            tables.append(table)
    return tables


def _verdict(result: PairedDifference, sign: int, base_mean: float) -> Cell:
    """Better / worse (significant at 5 % in the metric's direction, and more than 1 % of
    the baseline's mean), negligible (significant but smaller), or n.s."""
    if not result.stars:
        return Cell("n.s." if result.p_value == result.p_value else MISSING)
    if abs(result.mean) <= MIN_EFFECT * abs(base_mean):
        return Cell("negligible")
    if sign == 0:
        return Cell("differs")
    good = sign * result.mean > 0
    return Cell("better" if good else "worse", css="better" if good else "worse")


def _paired_row(
    label: list[str], result: PairedDifference, sign: int, base_mean: float
) -> list[Cell]:
    interval = f"[{fmt_num(result.ci_low)}, {fmt_num(result.ci_high)}]"
    return [Cell(t) for t in label] + [
        Cell(str(result.n)),
        Cell(fmt_num(result.mean)),
        Cell(interval if result.n > 1 else MISSING),
        Cell(fmt_p(result.p_value)),
        Cell(result.stars),
        _verdict(result, sign, base_mean),
    ]


_PAIRED_HEAD = ("pairs", "mean difference", "95 % CI", "p (paired t)", "sig.", "verdict")


def _policy_paired_rows(
    wide: pd.DataFrame, policy: str, baseline: str, data: ResultsData, sign: int
) -> list[list[Cell]]:
    """Rows of one policy: pooled over points ("all points") first, then per point."""
    paired = wide[[policy, baseline]].dropna()
    diffs = paired[policy] - paired[baseline]
    if not data.swept:
        groups: list[tuple[list[str], pd.Series]] = [([policy], diffs)]
    else:
        groups = [([policy, "all points"], diffs)]
        if len(data.points) > 1:
            at = diffs.index.get_level_values("point")
            groups += [([policy, pt], diffs[at == pt]) for pt in data.points if (at == pt).any()]
    rows = []
    for label, values in groups:
        result = paired_difference(values.to_numpy(float))
        if result.n:
            base_mean = float(paired.loc[values.index, baseline].mean())
            rows.append(_paired_row(label, result, sign, base_mean))
    return rows


def paired_tables(
    data: ResultsData, baseline: str, metrics: Iterable[str] = PAIRED_METRICS
) -> list[Table]:
    """Per metric: each policy minus ``baseline``, paired by seed and sweep point.

    With a sweep, the pooled row ("all points") comes first, then one row per
    point, since a policy may win at low load and lose at high load.
    """
    assert data.metrics is not None
    frame = data.metrics[data.metrics["scope"] == "all"]
    labels = ["policy", "sweep point"] if data.swept else ["policy"]
    tables = []
    for metric in metrics:
        rows = frame[frame["metric"] == metric]
        if rows.empty:
            continue
        wide = rows.pivot_table(index=["point", "seed"], columns="policy", values="value")
        if baseline not in wide.columns:
            continue
        sign = mm.direction(metric, data.metrics_meta)
        title = f"{metric}: policy {MINUS} {baseline}; {_direction_text(sign)}"
        table = Table(title, [*labels, *_PAIRED_HEAD], n_labels=len(labels))
        for policy in (p for p in data.policies if p != baseline and p in wide.columns):
            table.rows += _policy_paired_rows(wide, policy, baseline, data, sign)
        if table.rows:
            tables.append(table)
    return tables

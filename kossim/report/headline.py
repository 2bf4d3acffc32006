"""The report's opening answer: who wins each key metric, by how much, and how surely.

One row per key metric and sweep point. A policy wins only when every other
policy is significantly worse (paired t test over seeds, :mod:`.verdicts`);
otherwise the row says which policies are within noise of each other. The
effect is stated against the baseline, in percent of the baseline's mean,
with the 95 % interval of the paired difference scaled the same way.
"""

from __future__ import annotations

from kossim.report import metrics_meta as mm
from kossim.report.fmt import MISSING, fmt_num, fmt_p
from kossim.report.inference import PairedDifference
from kossim.report.load import ResultsData
from kossim.report.tables import Cell, Table
from kossim.report.verdicts import Judge, Standing, percent

__all__ = ["HEADLINE_METRICS", "headline_table"]

HEADLINE_METRICS: tuple[str, ...] = (
    "sojourn_mean",
    "sojourn_p95",
    "wait_mean",
    "throughput",
    "deadline_miss_rate",
    "abandoned",
)
"""Metrics the headline judges, when the results hold them and they are not neutral."""


def _pct(value: float) -> str:
    """Signed percent: one decimal, two below 1 % so small effects do not read as zero."""
    if value != value:
        return MISSING
    return f"{value:+.2f} %" if abs(value) < 1 else f"{value:+.1f} %"


def _effect(result: PairedDifference | None, base_mean: float) -> list[Cell]:
    """Percent change against the baseline, its interval and p-value."""
    if result is None or not result.n:
        return [Cell(MISSING), Cell(MISSING), Cell(MISSING)]
    low, high = percent(result.ci_low, base_mean), percent(result.ci_high, base_mean)
    interval = f"[{_pct(low)}, {_pct(high)}]".replace(" %", "") + " %"
    return [
        Cell(_pct(percent(result.mean, base_mean))),
        Cell(interval if result.n > 1 and low == low else MISSING),
        Cell(fmt_p(result.p_value)),
    ]


def _verdict(standing: Standing, baseline: str) -> tuple[str, str, str]:
    """(sentence, css class, policy compared with the baseline) for one standing.

    The compared policy is the best one, or the runner-up when the best is the
    baseline itself, so the effect columns always say something.
    """
    best = standing.best or ""
    compared = (standing.runner_up or "") if best == baseline else best
    if standing.winner is not None:
        if best == baseline:
            return f"{best} (baseline) wins; next best {compared}", "better", compared
        return f"{best} wins", "better", best
    if len(set(standing.means.values())) == 1:
        return f"all policies equal ({fmt_num(standing.means[best])})", "", best
    if len(standing.ties) == len(standing.means) - 1:
        return "no difference both significant and over 1 %", "", compared
    leaders = ", ".join([best, *standing.ties])
    return f"no single winner: {leaders} within noise or 1 %", "", compared


def _all_equal(standings: list[Standing]) -> bool:
    """Every point has one value shared by all policies, the same at every point."""
    values = {v for s in standings for v in s.means.values()}
    return bool(standings) and all(s.best is not None for s in standings) and len(values) == 1


def headline_table(data: ResultsData, baseline: str, judge: Judge | None = None) -> Table | None:
    """The headline as a table, or ``None`` without per-seed metrics."""
    if data.metrics is None or not baseline:
        return None
    judge = judge or Judge(data.metrics, data.policies)
    labels = ["metric", "sweep point"] if data.swept else ["metric"]
    table = Table(
        "",
        [*labels, "result (paired t test, 5 %)", "policy", f"vs {baseline}", "95 % CI", "p"],
        n_labels=len(labels) + 2,
    )
    present = set(data.metrics["metric"])
    for metric in HEADLINE_METRICS:
        sign = mm.direction(metric, data.metrics_meta)
        if metric not in present or sign == 0:
            continue
        standings = [judge.standing(metric, "all", pt, sign) for pt in data.points or [""]]
        if data.swept and _all_equal(standings):  # one row says it for every point
            first = standings[0]
            lead = [Cell(metric), Cell("all points")]
            text = f"all policies equal ({fmt_num(first.means[first.best or ''])})"
            table.rows.append([*lead, Cell(text), Cell(first.best or ""), *_effect(None, 0.0)])
            continue
        for point, standing in zip(data.points or [""], standings, strict=True):
            if standing.best is None:
                continue
            text, css, compared = _verdict(standing, baseline)
            result = judge.versus(metric, "all", point, compared, baseline)
            base_mean = standing.means.get(baseline, float("nan"))
            lead = [Cell(metric)] + ([Cell(point)] if data.swept else [])
            effect = _effect(result if compared != baseline else None, base_mean)
            table.rows.append([*lead, Cell(text, css=css), Cell(compared), *effect])
    return table if table.rows else None

"""Declarative expectations: the ``expect:`` block of an experiment.

An expectation pins a policy outcome so CI notices when a change to the
engine or a policy moves it: one policy beats another, a metric stays in
bounds, a simulated figure matches theory, or a whole ``summary.csv`` still
agrees with a stored baseline. The models validate at load time (the config
loader embeds ``list[Expectation]``); :func:`evaluate` judges them against a
results folder's tables and never raises for missing data, so one broken
expectation cannot hide the others.

The models live in :mod:`kossim.analysis.expectations` (pydantic only, so the config
models embed them without importing pandas); this module judges them, on the tables as
rows (:mod:`kossim.analysis.rows`), so ``kossim run`` checks without loading pandas.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kossim.analysis.expectations import (
    METRIC_DIRECTION,
    BaselineExpectation,
    BetterExpectation,
    BoundsExpectation,
    Expectation,
    GrowthExpectation,
    WithinExpectation,
    _at_text,
)
from kossim.analysis.rows import (
    Rows,
    column,
    compare_rows,
    group_rows,
    nan_mean,
    paired_rows,
    read_metrics,
    rows_of,
    swept_of,
)
from kossim.analysis.stats import canonical
from kossim.lab.atomic import atomic_write

__all__ = [
    "METRIC_DIRECTION",
    "RESULTS_FILE",
    "BaselineExpectation",
    "BetterExpectation",
    "BoundsExpectation",
    "CheckResult",
    "Expectation",
    "WithinExpectation",
    "check_folder",
    "evaluate",
    "format_table",
    "junit_xml",
    "read_results",
    "results_json",
]

RESULTS_FILE = "expectations.json"
"""The verdicts of the last check of a results folder, which its report shows."""

_SHOWN = 6  # points listed in a detail before "... and N more"


@dataclass(frozen=True)
class CheckResult:
    """Verdict on one expectation; ``detail`` carries the numbers behind it."""

    expectation: str
    passed: bool
    detail: str


def evaluate(
    expectations: Iterable[BaseModel],
    metrics_df: Any,
    summary_df: Any | None = None,
    base_dir: Path | str = ".",
) -> list[CheckResult]:
    """Judge each expectation against tidy metrics and their summary.

    The tables are DataFrames or :data:`~kossim.analysis.rows.Rows`.
    ``summary_df`` defaults to :func:`kossim.analysis.stats.summarize` of
    ``metrics_df``. Missing metrics, policies, scopes or sweep points give a
    failed result that says what is missing; no expectation raises.
    """
    if summary_df is None:
        from kossim.analysis.stats import summarize

        summary_df = summarize(metrics_df)
    metrics, summary = rows_of(metrics_df), rows_of(summary_df)
    results = []
    for exp in expectations:
        text = exp.describe() if hasattr(exp, "describe") else repr(exp)
        try:
            passed, detail = _judge(exp, metrics, summary, Path(base_dir))
        except Exception as exc:  # a bug in one check must not hide the rest
            passed, detail = False, f"could not evaluate: {type(exc).__name__}: {exc}"
        results.append(CheckResult(text, passed, detail))
    return results


def _judge(exp: BaseModel, metrics: Rows, summary: Rows, base_dir: Path) -> tuple[bool, str]:
    if isinstance(exp, BetterExpectation):
        return _judge_better(exp, metrics)
    if isinstance(exp, BoundsExpectation):
        return _judge_bounds(exp, metrics, summary)
    if isinstance(exp, WithinExpectation):
        return _judge_within(exp, summary)
    if isinstance(exp, BaselineExpectation):
        return _judge_baseline(exp, summary, base_dir)
    if isinstance(exp, GrowthExpectation):
        return _judge_growth(exp, summary)
    return False, f"unknown expectation type {type(exp).__name__}"


def _listing(values: Iterable[Any], limit: int = 10) -> str:
    items = [str(v) for v in dict.fromkeys(values)]
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _where(row: Any, swept: Sequence[str], *extra: str) -> str:
    """Row label: policy, then each swept path by its last segment (unless ambiguous)."""
    tails = [path.rsplit(".", 1)[-1] for path in swept]
    names = tails if len(set(tails)) == len(tails) else list(swept)
    point = [f"{name}={row[path]}" for name, path in zip(names, swept, strict=True)]
    return " ".join(part for part in [str(row.get("policy", "")), *point, *extra] if part)


def _select(
    frame: Rows, metric: str, scope: str, policies: Sequence[str], at: dict[str, Any] | None
) -> tuple[Rows, str]:
    """Rows of one metric and scope for some policies at some points, or why there are none."""
    names, all_rows = frame
    none: Rows = (names, [])
    swept = swept_of(frame)
    rows = [r for r in all_rows if r["metric"] == metric and r["scope"] == scope]
    missing = [p for p in policies if p not in set(column(frame, "policy"))]
    if metric not in set(column(frame, "metric")):
        return (
            none,
            f"metric {metric!r} not in results (metrics: {_listing(column(frame, 'metric'))})",
        )
    if not rows:
        scopes = _listing(r["scope"] for r in all_rows if r["metric"] == metric)
        return none, f"no {metric} rows for scope {scope!r} (scopes: {scopes})"
    if missing:
        policies_text = _listing(column(frame, "policy"))
        return none, f"policy {missing[0]!r} not in results (policies: {policies_text})"
    if policies:
        rows = [r for r in rows if r["policy"] in policies]
    for path, value in (at or {}).items():
        if path not in swept:
            return none, f"at: {path!r} is not a swept path (swept: {_listing(swept)})"
        rows = [r for r in rows if canonical(r[path]) == canonical(value)]
    return (names, rows), "" if rows else f"no sweep point matches{_at_text(at)}"


def _verdict(items: list[tuple[bool, str]], unit: str = "points") -> tuple[bool, str]:
    """All items must pass; the detail lists the failures first, or a sample of passes."""
    failed = [text for ok, text in items if not ok]
    shown = failed or [text for _, text in items]
    head = f"{len(failed)} of {len(items)} {unit} fail: " if failed else ""
    tail = f"; ... and {len(shown) - _SHOWN} more" if len(shown) > _SHOWN else ""
    return not failed, head + "; ".join(shown[:_SHOWN]) + tail


def _judge_better(exp: BetterExpectation, metrics: Rows) -> tuple[bool, str]:
    selected, why = _select(metrics, exp.metric, exp.scope, [exp.better, exp.than], exp.at)
    if why:
        return False, why
    swept = swept_of(metrics)
    groups = group_rows(selected[1], [*swept, "policy"], dropna=True)
    means = {key: nan_mean([r["value"] for r in part]) for key, part in groups}
    diffs = paired_rows(
        selected[1],
        exp.metric,
        exp.scope,
        exp.better,
        exp.than,
        keys=swept,
        level=1.0 - exp.level,
        method=exp.method,
    )
    sign = -1.0 if exp.resolved_direction == "lower" else 1.0
    items = []
    for d in diffs:
        key = tuple(d.point[c] for c in swept)
        where = _where({**d.point, "policy": ""}, swept) + ": " if swept else ""
        if d.n == 0:
            items.append((False, f"{where}no seed where both {exp.better} and {exp.than} ran"))
            continue
        ok_side = sign * d.mean_diff > 0
        ok_sig = not exp.significant or d.p_value < exp.level
        reason = "" if ok_side else " (not better)"
        reason = f" (not significant at {exp.level:g})" if ok_side and not ok_sig else reason
        text = (
            f"{where}{exp.better} {means[(*key, exp.better)]:.4g} vs {exp.than} "
            f"{means[(*key, exp.than)]:.4g}, diff {d.mean_diff:+.4g} "
            f"[{d.ci_low:.4g}, {d.ci_high:.4g}], p={d.p_value:.3g}, n={d.n}{reason}"
        )
        items.append((ok_side and ok_sig, text))
    return _verdict(items)


def _in_bounds(value: float, low: float | None, high: float | None) -> bool:
    if math.isnan(value):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def _judge_bounds(exp: BoundsExpectation, metrics: Rows, summary: Rows) -> tuple[bool, str]:
    per_seed = exp.on == "every_seed"
    frame = metrics if per_seed else summary
    rows, why = _select(frame, exp.metric, exp.scope, [exp.policy] if exp.policy else [], exp.at)
    if why:
        return False, why
    swept, column_name = swept_of(frame), "value" if per_seed else exp.on
    items = []
    for row in rows[1]:
        value = float(row[column_name])
        if per_seed:
            text = f"{_where(row, swept, 'seed ' + str(row['seed']))}: value {value:.4g}"
        else:
            text = (
                f"{_where(row, swept)}: {column_name} {value:.4g} (mean {row['mean']:.4g} "
                f"[{row['ci_low']:.4g}, {row['ci_high']:.4g}], n={row['n']})"
            )
        items.append((_in_bounds(value, exp.min, exp.max), text))
    return _verdict(items, "seeds" if per_seed else "points")


def _judge_growth(exp: GrowthExpectation, summary: Rows) -> tuple[bool, str]:
    path = exp.path
    a, b = exp.growth[path]
    rows, why = _select(summary, exp.metric, exp.scope, [exp.policy] if exp.policy else [], exp.at)
    if why:
        return False, why
    swept = swept_of(summary)
    if path not in swept:
        return False, f"growth: {path!r} is not a swept path (swept: {_listing(swept)})"
    # The other dimensions of the sweep: swept paths that vary at one value of ``path``
    # (paths zipped with it change with it, so they are not dimensions of their own).
    at_path = group_rows(rows[1], [path], dropna=False)
    others = [
        c
        for c in swept
        if c != path and max(len({canonical(r[c]) for r in part}) for _, part in at_path) > 1
    ]
    items = []
    for _, group in group_rows(rows[1], ["policy", *others], dropna=False):
        ends = [[r for r in group if canonical(r[path]) == canonical(v)] for v in (a, b)]
        head = _where(group[0], others)
        if any(not e for e in ends):
            missing = a if not ends[0] else b
            items.append((False, f"{head}: no results at {path}={missing}"))
            continue
        first, last = (e[0] for e in ends)
        ratio = float(last["mean"]) / float(first["mean"]) if first["mean"] else math.nan
        text = (
            f"{head}: {first['mean']:.4g} [{first['ci_low']:.4g}, {first['ci_high']:.4g}] at "
            f"{a}, {last['mean']:.4g} [{last['ci_low']:.4g}, {last['ci_high']:.4g}] at {b}: "
            f"x{ratio:.3g}"
        )
        items.append((_in_bounds(ratio, exp.min_ratio, exp.max_ratio), text))
    return _verdict(items)


def _judge_within(exp: WithinExpectation, summary: Rows) -> tuple[bool, str]:
    policies = [exp.policy] if exp.policy else []
    rows, why = _select(summary, exp.metric, exp.scope, policies, exp.at)
    if why:
        return False, why
    swept, tol = swept_of(summary), exp.tolerance
    items = []
    for row in rows[1]:
        mean, low, high = float(row["mean"]), float(row["ci_low"]), float(row["ci_high"])
        off = math.fabs(mean - exp.value)
        in_ci = "inside" if low <= exp.value <= high else "outside"
        text = (
            f"{_where(row, swept)}: mean {mean:.4g} is {off:.3g} from {exp.value:g} "
            f"(tol {tol:.3g}); {exp.value:g} {in_ci} CI [{low:.4g}, {high:.4g}], n={row['n']}"
        )
        items.append((off <= tol, text))
    return _verdict(items)


def _judge_baseline(exp: BaselineExpectation, summary: Rows, base_dir: Path) -> tuple[bool, str]:
    from kossim.console import read_summary

    path = Path(exp.baseline)
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        return False, f"baseline file not found: {path}"
    stored = read_summary(path)
    old_swept, new_swept = swept_of(stored), swept_of(summary)
    if set(old_swept) != set(new_swept):
        return False, f"swept paths differ: stored {old_swept}, new {new_swept}"
    absent = [m for m in exp.metrics or [] if m not in set(column(stored, "metric"))]
    if absent:
        return False, f"metric {absent[0]!r} not in baseline {path.name}"
    if exp.metrics:
        stored = (stored[0], [r for r in stored[1] if r["metric"] in exp.metrics])
    items = []
    for row in compare_rows(stored, summary, exp.rel):
        where = _where(row, old_swept, f"{row['metric']}[{row['scope']}]")
        text = (
            f"{where}: missing from new results"
            if row["status"] == "missing"
            else f"{where}: {row['new_mean']:.4g} [{row['new_ci_low']:.4g}, "
            f"{row['new_ci_high']:.4g}] vs stored {row['stored_mean']:.4g} "
            f"[{row['stored_ci_low']:.4g}, {row['stored_ci_high']:.4g}]"
        )
        items.append((row["status"] == "agree", text))
    passed, detail = _verdict(items, "rows")
    return passed, detail if not passed else f"{len(items)} rows agree with {path.name}"


def results_table(results: Sequence[CheckResult]) -> Any:
    """A rich Table of verdicts, for a CLI that prints with colour.

    Cells are Text, not markup, so ``sojourn_mean[all]`` and CI brackets print as written.
    """
    from rich.table import Table
    from rich.text import Text

    table = Table(title="kossim expectations", show_lines=True)
    table.add_column("result", no_wrap=True)
    table.add_column("expectation", ratio=2)
    table.add_column("detail", ratio=3)
    for res in results:
        mark = Text("PASS", "green") if res.passed else Text("FAIL", "bold red")
        table.add_row(mark, Text(res.expectation), Text(res.detail))
    return table


def format_table(results: Sequence[CheckResult], width: int = 120) -> str:
    """Plain-text pass/fail table plus a one-line tally, for logs and CI output."""
    from rich.console import Console

    buffer = StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
    console.print(results_table(results))
    passed = sum(r.passed for r in results)
    console.print(f"{passed} of {len(results)} expectations passed")
    return buffer.getvalue()


def check_folder(
    folder: Path, expectations: Sequence[BaseModel], base_dir: Path | str
) -> list[CheckResult]:
    """Judge ``expectations`` on a results folder and record the verdicts in it.

    A missing or damaged table is a :class:`~kossim.errors.KossimInputError`.

    The verdicts go to :data:`RESULTS_FILE` in ``folder``, where the report
    finds them; relative baseline files are read from ``base_dir`` (the
    experiment file's folder).
    """
    from kossim.console import read_summary
    from kossim.lab.folders import read_tables

    metrics, summary = read_tables(folder, read_metrics, read_summary)
    results = evaluate(expectations, metrics, summary, base_dir=base_dir)
    atomic_write(folder / RESULTS_FILE, results_json(results, folder.name).encode())
    return results


def results_json(results: Sequence[CheckResult], name: str) -> str:
    """Verdicts as JSON: counts, then one object per expectation."""
    passed = sum(r.passed for r in results)
    body = {
        "experiment": name,
        "passed": passed,
        "failed": len(results) - passed,
        "expectations": [asdict(r) for r in results],
    }
    return json.dumps(body, indent=2) + "\n"


def read_results(folder: Path) -> list[CheckResult] | None:
    """The verdicts recorded in ``folder``, or ``None`` when it was never checked."""
    try:
        body = json.loads((folder / RESULTS_FILE).read_text())
        return [CheckResult(**item) for item in body["expectations"]]
    except FileNotFoundError:
        return None


def junit_xml(results: Sequence[CheckResult], name: str) -> bytes:
    """Verdicts as JUnit XML (one test case per expectation), which CI systems display."""
    failures = sum(not r.passed for r in results)
    suites = ET.Element("testsuites", name="kossim check", tests=str(len(results)))
    suites.set("failures", str(failures))
    suite = ET.SubElement(
        suites, "testsuite", name=name, tests=str(len(results)), failures=str(failures)
    )
    suite.set("errors", "0")
    for res in results:
        case = ET.SubElement(suite, "testcase", classname=f"kossim.{name}", name=res.expectation)
        if res.passed:
            ET.SubElement(case, "system-out").text = res.detail
        else:
            failure = ET.SubElement(case, "failure", message=res.detail[:500])
            failure.text = res.detail
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"

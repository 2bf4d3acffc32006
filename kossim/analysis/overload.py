"""Offered load per sweep point, and warnings when results describe a system that cannot cope.

A queue whose offered load is at or above 1 never reaches a steady state: its
means depend on the run length, and metrics of completed tasks describe the
lucky ones. This module computes the offered load of each sweep point from
the scenario alone and inspects the results for the symptoms (tasks in the
system growing through the run, many tasks still in flight at the end), so
the console, the report and ``manifest.json`` can say so.

Offered load is arrival rate x mean work / service capacity, where capacity
is the sum of ``count x capacity x speed x proficiency x availability`` of
the agents able to serve. Availability is ``E[up] / (E[up] + E[down])`` of the
agent failure clock (and of the node clock, for agents on a declared node).
When task types need different skills, the load is computed per skill pool
and for every union of pools (a pool's work may spill onto agents shared with
another); the point's load is the largest, a necessary condition for
stability (agents are credited with their best proficiency, so with uneven
proficiencies the true load can be higher).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kossim.config.models import AgentGroup, Scenario
from kossim.lab.atomic import atomic_write
from kossim.lab.plan import Plan
from kossim.report.load import point_label

__all__ = [
    "LoadReport",
    "OfferedLoad",
    "assess",
    "offered_load",
    "overload_warnings",
    "point_loads",
]

OVERLOADED = 1.0
"""Offered load at or above which a point is overloaded."""
IN_FLIGHT_SHARE = 0.05
"""Share of measured tasks still in flight above which completed-only metrics are flagged."""
GROWTH = 0.5
"""Relative rise of tasks in system over the measured window that counts as growth."""
_MAX_POOLS = 10  # unions of more pools than this are not enumerated


@dataclass(frozen=True)
class OfferedLoad:
    """Offered load of one scenario; ``pools`` maps a skill set label to its own load."""

    load: float
    pools: dict[str, float] = field(default_factory=dict)


def _availability(scenario: Scenario, group: AgentGroup) -> float:
    share = 1.0
    for spec, name in (
        (scenario.failures.agents, group.group),
        (scenario.failures.nodes, group.node),
    ):
        if spec is None or name is None or (spec.only is not None and name not in spec.only):
            continue
        up, down = spec.up.mean_value(), spec.down.mean_value()
        share *= up / (up + down) if up + down > 0 else 1.0
    return share


def _proficiency(group: AgentGroup, skills: frozenset[str]) -> float:
    """Service-rate multiplier of ``group`` for tasks needing ``skills`` (0: cannot serve)."""
    if not skills:
        return 1.0
    if not skills <= set(group.skills):
        return 0.0
    return min(group.skills[s] for s in skills)


def offered_load(scenario: Scenario) -> OfferedLoad:
    """Arrival rate x mean work / service capacity, the largest over unions of skill pools."""
    rate = 1.0 / scenario.workload.arrivals.mean_interarrival()
    tasks = scenario.workload.tasks
    total_share = sum(t.share for t in tasks)
    demand: dict[frozenset[str], float] = {}
    for t in tasks:
        pool = frozenset(t.skills)
        demand[pool] = demand.get(pool, 0.0) + rate * t.share / total_share * t.work.mean_value()
    slots = {
        g.group: g.count * g.capacity * g.speed * _availability(scenario, g)
        for g in scenario.agents
    }

    def load_of(pools: Iterable[frozenset[str]]) -> float:
        chosen = list(pools)
        capacity = sum(
            slots[g.group] * max(_proficiency(g, p) for p in chosen) for g in scenario.agents
        )
        work = sum(demand[p] for p in chosen)
        return work / capacity if capacity > 0 else math.inf

    pools = sorted(demand, key=lambda p: sorted(p))
    if len(pools) == 1:
        return OfferedLoad(load_of(pools))
    if len(pools) <= _MAX_POOLS:
        unions = itertools.chain.from_iterable(
            itertools.combinations(pools, k) for k in range(1, len(pools) + 1)
        )
        worst = max(load_of(u) for u in unions)
    else:
        worst = max([load_of(pools), *(load_of([p]) for p in pools)])
    per_pool = {"+".join(sorted(p)) or "(no skill)": load_of([p]) for p in pools}
    return OfferedLoad(worst, per_pool)


@dataclass
class LoadReport:
    """Offered load per point and the warnings, as recorded under ``load`` in the manifest."""

    points: list[dict[str, Any]]
    warnings: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"points": self.points, "warnings": self.warnings}


def _growth(series: pd.DataFrame, start: float) -> tuple[float, float]:
    """Mean over seeds of the fitted rise of tasks in system after ``start`` (relative to its
    mean level), and the one-sided p-value that it is positive."""
    rises = []
    for _, run in series.groupby("seed"):
        window = run[run["time"] >= start]
        if len(window) < 3:
            continue
        times, values = window["time"].to_numpy(float), window["value"].to_numpy(float)
        slope = np.polyfit(times, values, 1)[0]
        rises.append(slope * (times[-1] - times[0]) / max(float(values.mean()), 1.0))
    if not rises:
        return math.nan, math.nan
    arr = np.asarray(rises)
    if arr.size < 2 or arr.std(ddof=1) == 0:
        return float(arr.mean()), 0.0 if arr.mean() > 0 else 1.0
    from scipy.special import stdtr  # scipy.stats's one-sided t test, without its import cost

    t = float(arr.mean()) / (float(arr.std(ddof=1)) / math.sqrt(arr.size))
    return float(arr.mean()), float(stdtr(arr.size - 1, -t))


def _by_point(found: list[tuple[Any, str]], swept: list[str], order: list[str]) -> dict[str, str]:
    """``(key, text)`` pairs grouped by sweep point: ``{point label: "policy text, ..."}``."""
    grouped: dict[str, list[tuple[int, str]]] = {}
    for key, text in found:
        parts = key if isinstance(key, tuple) else (key,)
        label = point_label(dict(zip(swept, parts[1:], strict=True)), swept) if swept else ""
        rank = order.index(parts[0]) if parts[0] in order else len(order)
        grouped.setdefault(label, []).append((rank, f"{parts[0]} {text}".strip()))
    return {label: ", ".join(t for _, t in sorted(items)) for label, items in grouped.items()}


def _at(label: str, text: str) -> str:
    return f"at {label}: {text}" if label else text


def _in_flight_warnings(metrics: pd.DataFrame, keys: list[str], plan: Plan) -> list[str]:
    rows = metrics[(metrics["scope"] == "all") & metrics["metric"].isin(["arrived", "in_flight"])]
    if rows.empty:
        return []
    wide = rows.pivot_table(index=keys, columns="metric", values="value", aggfunc="sum")
    found = []
    for key, row in wide.iterrows():
        arrived, in_flight = row.get("arrived", 0.0), row.get("in_flight", 0.0)
        share = in_flight / arrived if arrived else 0.0
        if share > IN_FLIGHT_SHARE:
            found.append((key, f"{share:.0%}"))
    return _at_points(
        found,
        plan,
        "measured tasks still in flight at the end: {}; wait and sojourn metrics describe "
        "completed tasks only",
    )


def _growth_warnings(series: pd.DataFrame, keys: list[str], plan: Plan, start: float) -> list[str]:
    found = []
    for key, part in series.groupby(keys, sort=False):
        rise, p_value = _growth(part, start)
        if rise > GROWTH and p_value < 0.05:
            found.append((key, f"+{rise:.0%}"))
    return _at_points(
        found,
        plan,
        "tasks in system grew through the run ({} of the mean level): no steady state, so "
        "the means depend on the run length",
    )


def _at_points(found: list[tuple[Any, str]], plan: Plan, message: str) -> list[str]:
    """One warning per sweep point, ``message`` filled with what was found there."""
    policies = [p.name for p in plan.experiment.policies]
    return [
        _at(label, message.format(text))
        for label, text in _by_point(found, plan.swept, policies).items()
    ]


def _symptoms(out_dir: Path, plan: Plan) -> list[str]:
    """Warnings from the results: in-flight share and growth of tasks in system."""
    if not (out_dir / "metrics.parquet").exists():
        return []
    keys = ["policy", *plan.swept]
    warnings = _in_flight_warnings(pd.read_parquet(out_dir / "metrics.parquet"), keys, plan)
    series_file = out_dir / "timeseries.parquet"
    if not series_file.exists():
        return warnings
    series = pd.read_parquet(series_file)
    series = series[series["variable"] == "in_system"]
    if series.empty:
        return warnings
    warmup = plan.experiment.warmup
    start = float(warmup) if isinstance(warmup, int | float) else 0.25 * series["time"].max()
    return warnings + _growth_warnings(series, keys, plan, start)


def point_loads(plan: Plan) -> list[dict[str, Any]]:
    """``{point, label, offered_load, pools}`` of every sweep point, in sweep order."""
    points: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for spec in plan.specs:
        if spec.point in seen:
            continue
        seen.add(spec.point)
        load = offered_load(Scenario.model_validate(spec.config["scenario"]))
        point = dict(spec.point)
        label = point_label(point, plan.swept)
        points.append(
            {"point": point, "label": label, "offered_load": load.load, "pools": load.pools}
        )
    return points


def overload_warnings(points: list[dict[str, Any]]) -> list[str]:
    """One warning per point whose offered load is at or above 1."""
    return [
        _at(
            p["label"],
            f"offered load {p['offered_load']:.2f} >= 1: more work arrives than the agents can "
            "serve; queues grow without bound unless finite buffers (queue_limit) or "
            "patience shed the excess (see rejected and reneged)",
        )
        for p in points
        if p["offered_load"] >= OVERLOADED
    ]


def assess(plan: Plan, out_dir: Path, overrides: Iterable[str] = ()) -> LoadReport:
    """Offered load of every sweep point and the overload warnings, recorded in the manifest
    (with the ``--set`` overrides the run applied, so the report can name them)."""
    points = point_loads(plan)
    report = LoadReport(points, overload_warnings(points) + _symptoms(out_dir, plan))
    path = out_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["load"] = report.as_dict()
    manifest["overrides"] = list(overrides)
    atomic_write(path, json.dumps(manifest, indent=2, default=str).encode())
    return report

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
import pyarrow.parquet as pq

from kossim.config.models import AgentGroup, Scenario
from kossim.lab.atomic import atomic_write
from kossim.lab.plan import Plan
from kossim.lab.tables import missing
from kossim.report.fmt import point_label

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


Key = tuple[Any, ...]
"""(policy, swept values...) of a row."""


def _growth(runs: dict[Any, tuple[list[float], list[float]]], start: float) -> tuple[float, float]:
    """Mean over seeds of the fitted rise of tasks in system after ``start`` (relative to its
    mean level), and the one-sided p-value that it is positive. ``runs``: times and values
    of each seed's series."""
    rises = []
    for seed in sorted(runs):
        times, values = (np.asarray(c, dtype=float) for c in runs[seed])
        window = times >= start
        if np.count_nonzero(window) < 3:
            continue
        times, values = times[window], values[window]
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


def _sort_key(key: Key) -> tuple[Any, ...]:
    """Keys in ascending order, missing values last (as a sorted pandas index has them)."""
    return tuple((missing(v), 0 if missing(v) else v) for v in key)


def _found_key(key: Key) -> Any:
    """A one-column key as its value alone (as pandas gives the labels of one column)."""
    return key if len(key) > 1 else key[0]


def _in_flight_warnings(metrics: dict[str, list[Any]], keys: list[str], plan: Plan) -> list[str]:
    """Per policy and point: the share of measured tasks still in flight, summed over seeds."""
    sums: dict[Key, dict[str, float]] = {}
    rows = zip(metrics["metric"], metrics["scope"], metrics["value"], strict=True)
    for i, (metric, scope, value) in enumerate(rows):
        if scope != "all" or metric not in ("arrived", "in_flight"):
            continue
        key = tuple(metrics[k][i] for k in keys)
        if any(missing(v) for v in key):
            continue  # pandas' pivot table leaves out rows with a missing key
        cell = sums.setdefault(key, {})
        cell[metric] = cell.get(metric, 0.0) + (0.0 if missing(value) else value)
    found = []
    for key in sorted(sums, key=_sort_key):
        arrived, in_flight = sums[key].get("arrived", 0.0), sums[key].get("in_flight", 0.0)
        share = in_flight / arrived if arrived else 0.0
        if share > IN_FLIGHT_SHARE:
            found.append((_found_key(key), f"{share:.0%}"))
    return _at_points(
        found,
        plan,
        "measured tasks still in flight at the end: {}; wait and sojourn metrics describe "
        "completed tasks only",
    )


def _growth_warnings(
    series: dict[str, list[Any]], keys: list[str], plan: Plan, start: float
) -> list[str]:
    """Per policy and point (first-seen order): tasks in system growing through the runs."""
    groups: dict[Key, dict[Any, tuple[list[float], list[float]]]] = {}
    for i, (seed, time, value) in enumerate(
        zip(series["seed"], series["time"], series["value"], strict=True)
    ):
        key = tuple(series[k][i] for k in keys)
        if any(missing(v) for v in key):
            continue  # pandas' groupby leaves out rows with a missing key
        times, values = groups.setdefault(key, {}).setdefault(seed, ([], []))
        times.append(math.nan if time is None else time)
        values.append(math.nan if value is None else value)
    found = []
    for key, runs in groups.items():
        rise, p_value = _growth(runs, start)
        if rise > GROWTH and p_value < 0.05:
            found.append((_found_key(key), f"+{rise:.0%}"))
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


def _read(path: Path, columns: list[str], **filters: str) -> dict[str, list[Any]]:
    """Columns of a results table as lists, rows where each ``filters`` column equals its
    value (pyarrow alone, which ``kossim run`` keeps from loading pandas: see
    :mod:`kossim.lab.tables`)."""
    wanted = columns + [c for c in filters if c not in columns]
    table = pq.ParquetFile(path).read(columns=wanted)
    data = {c: table.column(c).to_pylist() for c in wanted}
    keep = [
        i for i in range(table.num_rows) if all(data[c][i] == value for c, value in filters.items())
    ]
    if len(keep) == table.num_rows:
        return {c: data[c] for c in columns}
    return {c: [data[c][i] for i in keep] for c in columns}


def _symptoms(out_dir: Path, plan: Plan) -> list[str]:
    """Warnings from the results: in-flight share and growth of tasks in system."""
    if not (out_dir / "metrics.parquet").exists():
        return []
    keys = ["policy", *plan.swept]
    metrics = _read(out_dir / "metrics.parquet", [*keys, "metric", "scope", "value"])
    warnings = _in_flight_warnings(metrics, keys, plan)
    series_file = out_dir / "timeseries.parquet"
    if not series_file.exists():
        return warnings
    series = _read(series_file, [*keys, "seed", "time", "value"], variable="in_system")
    if not series["time"]:
        return warnings
    warmup = plan.experiment.warmup
    start = (
        float(warmup)
        if isinstance(warmup, int | float)
        else 0.25 * max((t for t in series["time"] if not missing(t)), default=math.nan)
    )
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

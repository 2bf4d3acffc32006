"""Figures drawn from per-seed data: sojourn ECDFs, spread over seeds, time series, Gantt.

These show what means hide: the shape of the sojourn distribution, how much a
policy's result varies from seed to seed, how the backlog evolves, and what
agents actually did during a short window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.patches import Patch

from kossim.report import metrics_meta as mm
from kossim.report.figures import (
    Figure,
    PlotWriter,
    facet_note,
    facet_points,
    natural_key,
    panel_grid,
    policy_colours,
    policy_legend,
    present,
    type_colours,
)
from kossim.report.load import ResultsData

__all__ = [
    "GANTT_TASKS",
    "GANTT_WINDOW",
    "ecdf_figure",
    "gantt_figure",
    "in_system_figure",
    "scenario_marks",
    "seed_spread_figure",
    "timeline_marks",
]

GANTT_WINDOW = 50.0
"""Longest window of a Gantt chart, in simulated time after the warm-up."""
GANTT_TASKS = 200
"""Fewest task starts after which the Gantt window is cut short, to stay legible."""


def _panel_title(point: str) -> str:
    return point or "all runs"


LOG_SPREAD = 30.0
"""``auto`` ECDF axis turns logarithmic when the largest 99th percentile exceeds the
smallest median by this factor (one slow policy would squeeze the others to the left)."""


def _log_axis(curves: pd.DataFrame, axis: str) -> bool:
    if axis != "auto":
        return axis == "log"
    p99 = curves[curves["quantile"].round(2) == 0.99].groupby(["policy", "point"])["value"].max()
    p50 = curves[curves["quantile"].round(2) == 0.5].groupby(["policy", "point"])["value"].max()
    if p99.empty or p50.empty or not (p50 > 0).all():
        return False
    return bool(p99.max() > LOG_SPREAD * p50.min())


def _ecdf_limits(ax: Any, here: pd.DataFrame, log: bool) -> None:
    high = here[here["quantile"] <= 0.99].groupby("policy")["value"].max()
    if high.empty or not np.isfinite(high.max()) or high.max() <= 0:
        return
    if log:
        low = here[(here["quantile"] >= 0.01) & (here["value"] > 0)]["value"]
        ax.set_xscale("log")
        if not low.empty:
            ax.set_xlim(left=float(low.min()) * 0.8, right=float(high.max()) * 1.2)
    else:
        ax.set_xlim(left=0.0, right=float(high.max()) * 1.05)


def ecdf_figure(data: ResultsData, writer: PlotWriter) -> Figure | None:
    """Sojourn ECDF per policy: the quantile function averaged over seeds, one panel per point."""
    frame = data.distributions
    if frame is None:
        return None
    frame = frame[frame["variable"] == "sojourn"]
    if frame.empty:
        return None
    curves = (
        frame.groupby(["policy", "point", "quantile"], sort=False)["value"].mean().reset_index()
    )
    all_points = present(data.points, curves["point"])
    points = facet_points(all_points)
    colours = policy_colours(data.policies)
    log = _log_axis(curves, writer.ecdf_axis)
    fig, axes = panel_grid(len(points), width=5.6, height=3.6)
    for ax, point in zip(axes, points, strict=True):
        here = curves[curves["point"] == point]
        for policy in data.policies:
            mine = here[here["policy"] == policy].sort_values("quantile")
            if not mine.empty:
                ax.plot(
                    mine["value"], mine["quantile"], color=colours[policy], label=policy, lw=1.6
                )
        _ecdf_limits(ax, here, log)
        ax.set(
            xlabel=f"sojourn [{mm.TIME_UNIT}]" + (", log scale" if log else ""),
            ylabel="fraction of tasks ≤ x",
            title=_panel_title(point),
        )
        ax.set_ylim(0, 1.0)
        ax.grid(alpha=0.3)
    policy_legend(fig, present(data.policies, curves["policy"]), colours, lw=2)
    axis = (
        "logarithmic x axis (the policies' sojourn times differ by more than "
        f"{LOG_SPREAD:g}x; `kossim report --ecdf-axis linear` for a linear one)"
        if log
        else "x axis cut at the largest 99th percentile"
    )
    return writer.save(
        fig,
        "sojourn_ecdf",
        "Sojourn-time ECDF per policy (quantile functions averaged over seeds); "
        f"{axis}." + facet_note(len(points), len(all_points)),
    )


def _box_panel(
    ax: Any, here: pd.DataFrame, policies: list[str], colours: dict[str, Any], jitter: Any
) -> None:
    """Quartile boxes in policy colours with every seed drawn on top (seeds are few)."""
    samples = [here.loc[here["policy"] == p, "value"].to_numpy(float) for p in policies]
    box = ax.boxplot(samples, patch_artist=True, widths=0.55, showfliers=False)
    for patch, policy in zip(box["boxes"], policies, strict=True):
        patch.set(facecolor=colours[policy], alpha=0.35, edgecolor=colours[policy])
    for median in box["medians"]:
        median.set(color="black")
    for i, (values, policy) in enumerate(zip(samples, policies, strict=True), start=1):
        offsets = jitter.uniform(-0.12, 0.12, len(values))
        ax.scatter(i + offsets, values, s=14, color=colours[policy], zorder=3)
    many = len(policies) > 3
    ax.set_xticks(
        range(1, len(policies) + 1),
        policies,
        rotation=25 if many else 0,
        ha="right" if many else "center",
    )


def seed_spread_figure(
    data: ResultsData, writer: PlotWriter, metric: str = "sojourn_mean"
) -> Figure | None:
    """Box plot of the per-seed ``metric`` per policy, with each seed drawn as a dot."""
    frame = data.metrics
    if frame is None:
        return None
    frame = frame[(frame["metric"] == metric) & (frame["scope"] == "all")]
    if frame.empty:
        return None
    all_points = present(data.points, frame["point"])
    points = facet_points(all_points)
    colours = policy_colours(data.policies)
    jitter = np.random.default_rng(0)  # fixed: the same folder gives the same picture
    fig, axes = panel_grid(len(points), width=5.6, height=3.6)
    for ax, point in zip(axes, points, strict=True):
        here = frame[frame["point"] == point]
        _box_panel(
            ax, here, [p for p in data.policies if (here["policy"] == p).any()], colours, jitter
        )
        ax.set(ylabel=mm.axis_label(metric, data.metrics_meta), title=_panel_title(point))
        ax.grid(axis="y", alpha=0.3)
    caption = f"Per-seed {metric} per policy (box: quartiles; dots: seeds)."
    return writer.save(fig, f"seeds_{metric}", caption + facet_note(len(points), len(all_points)))


def timeline_marks(ax: Any, events: pd.DataFrame) -> int:
    """The scenario's timeline events (``event:<label>`` series of one run) on ``ax``:
    a period as a shaded span from each 1 to the next 0, an instant as a dotted line."""
    drawn = 0
    for variable, mine in events.groupby("variable", sort=False):
        label = str(variable).removeprefix("event:")
        mine = mine.sort_values("time", kind="stable")
        times, values = mine["time"].to_numpy(float), mine["value"].to_numpy(float)
        for i, (t, v) in enumerate(zip(times, values, strict=True)):
            if v == 1.0 and i + 1 < len(times):
                ax.axvspan(t, times[i + 1], color="0.5", alpha=0.15, lw=0)
            elif v == 1.0 or (v == 0.0 and (i == 0 or values[i - 1] != 1.0)):
                ax.axvline(t, color="0.3", ls=":", lw=1)
            else:
                continue
            ax.annotate(
                label, (t, 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=6,
                va="top", ha="right", color="0.25",
            )  # fmt: skip
            drawn += 1
    return drawn


def scenario_marks(data: ResultsData, seed: Any, point: str) -> pd.DataFrame | None:
    """The timeline's ``event:<label>`` series of one seed and point (none: ``None``)."""
    series = data.timeseries
    if series is None:
        return None
    marks = series[series["variable"].str.startswith("event:") & (series["seed"] == seed)]
    marks = marks[marks["point"] == point] if "point" in marks else marks
    return None if marks.empty else marks


def in_system_figure(data: ResultsData, writer: PlotWriter) -> Figure | None:
    """Tasks in system over time for the first seed, one line per policy, one panel per point;
    the scenario's timeline events (surges, kills, partitions, ...) marked on it."""
    series = data.timeseries
    if series is None:
        return None
    frame = series[series["variable"] == "in_system"]
    if frame.empty:
        return None
    seed = data.first_seed(frame)
    frame = frame[frame["seed"] == seed]
    marks = series[(series["seed"] == seed) & series["variable"].str.startswith("event:")]
    marked = 0
    all_points = present(data.points, frame["point"])
    points = facet_points(all_points)
    colours = policy_colours(data.policies)
    warmup = data.manifest.get("warmup")
    fig, axes = panel_grid(len(points), width=5.6, height=3.4)
    for ax, point in zip(axes, points, strict=True):
        here = frame[frame["point"] == point]
        for policy in data.policies:
            mine = here[here["policy"] == policy].sort_values("time")
            if not mine.empty:
                ax.step(
                    mine["time"],
                    mine["value"],
                    where="post",
                    color=colours[policy],
                    label=policy,
                    lw=1.1,
                )
        if isinstance(warmup, int | float) and warmup > 0:
            ax.axvline(float(warmup), color="grey", ls="--", lw=1)
        events = marks[marks["point"] == point]
        if not events.empty:  # one policy's: the timeline is the scenario's, the same for all
            marked += timeline_marks(ax, events[events["policy"] == events["policy"].iloc[0]])
        ax.set(xlabel=mm.TIME_UNIT, ylabel="tasks in system", title=_panel_title(point))
        ax.grid(alpha=0.3)
    policy_legend(fig, present(data.policies, frame["policy"]), colours, lw=2)
    note = facet_note(len(points), len(all_points))
    note += (
        " Dashed line: end of warm-up." if isinstance(warmup, int | float) and warmup > 0 else ""
    )
    if marked:
        note += " Grey: the scenario's timeline events (shaded: periods; dotted: instants)."
    return writer.save(fig, "in_system", f"Number of tasks in system over time, seed {seed}.{note}")


def _gantt_window(tasks: pd.DataFrame, warmup: float) -> tuple[float, float]:
    """From the warm-up: at most GANTT_WINDOW long, cut once a policy has GANTT_TASKS starts."""
    starts = tasks["start"].dropna()
    t0 = warmup if (starts >= warmup).any() else float(starts.min())
    last = float(np.nanmax(np.fmax(tasks["start"].to_numpy(float), tasks["end"].to_numpy(float))))
    t1 = min(t0 + GANTT_WINDOW, last)  # no empty stretch after the last recorded event
    for _, mine in tasks[tasks["start"] >= t0].groupby("policy"):
        ordered = np.sort(mine["start"].to_numpy(float))
        if len(ordered) > GANTT_TASKS:
            t1 = min(t1, float(ordered[GANTT_TASKS - 1]))
    return t0, max(t1, t0 + 1e-9)


def _gantt_panel(
    ax: Any, tasks: pd.DataFrame, window: tuple[float, float], colours: dict[str, Any]
) -> None:
    t0, t1 = window
    agents = sorted(pd.unique(tasks["agent"].astype(str)), key=natural_key)
    row = {a: i for i, a in enumerate(agents)}
    end = tasks["end"].fillna(t1).clip(upper=t1).to_numpy(float)
    start = tasks["start"].clip(lower=t0).to_numpy(float)
    y = tasks["agent"].astype(str).map(row).to_numpy(float)
    colour = [colours[str(t)] for t in tasks["type"]]
    boxes = np.stack(
        [
            np.column_stack([start, y - 0.35]),
            np.column_stack([end, y - 0.35]),
            np.column_stack([end, y + 0.35]),
            np.column_stack([start, y + 0.35]),
        ],
        axis=1,
    )
    # one collection, not a patch per task: hundreds of bars otherwise dominate render time
    ax.add_collection(
        PolyCollection(list(boxes), facecolors=colour, edgecolors="black", linewidths=0.3)
    )
    step = max(1, len(agents) // 30)
    ax.set_yticks(
        range(0, len(agents), step), agents[::step], fontsize=7 if len(agents) > 12 else 9
    )
    ax.set_ylim(len(agents) - 0.5, -0.5)
    ax.set_xlim(t0, t1)
    ax.set_xlabel(mm.TIME_UNIT)
    ax.grid(axis="x", alpha=0.3)


def gantt_figure(data: ResultsData, writer: PlotWriter) -> Figure | None:
    """Which agent ran which task in a short window.

    First seed, last (most loaded) sweep point, one panel per policy (at most
    six), so the policies are seen on the same workload.
    """
    tasks = data.tasks
    if tasks is None or tasks.empty:
        return None
    seed = data.first_seed(tasks)
    point = data.points[-1] if data.points else ""
    tasks = tasks[(tasks["seed"] == seed) & (tasks["point"] == point)]
    tasks = tasks[tasks["start"].notna() & tasks["agent"].notna()]
    if tasks.empty:
        return None
    warmup = data.manifest.get("warmup")
    t0, t1 = _gantt_window(tasks, float(warmup) if isinstance(warmup, int | float) else 0.0)
    shown = tasks[(tasks["start"] < t1) & (tasks["end"].isna() | (tasks["end"] > t0))]
    traced = present(data.policies, shown["policy"])
    policies = traced[:6]
    types = sorted(pd.unique(shown["type"].astype(str)), key=natural_key)
    colours = type_colours(types)
    n_agents = shown["agent"].nunique()
    fig, axes = panel_grid(len(policies), width=6.2, height=min(7.0, 1.2 + 0.22 * n_agents))
    for ax, policy in zip(axes, policies, strict=True):
        _gantt_panel(ax, shown[shown["policy"] == policy], (t0, t1), colours)
        ax.set_title(policy)
    handles = [Patch(facecolor=colours[t], label=t) for t in types[:8]]
    fig.legend(
        handles=handles,
        title="task type",
        loc="outside upper center",
        ncol=min(len(handles), 6),
        frameon=False,
    )
    where = f", {point}" if point else ""
    caption = f"Tasks in service per agent, seed {seed}{where}, time {t0:.4g} to {t1:.4g}."
    if len(traced) > len(policies):
        caption += f" Policies shown: the first {len(policies)} of {len(traced)}."
    return writer.save(fig, "gantt", caption)

"""Figures drawn from aggregated metrics: bars with CIs, sweeps, per-agent load.

All read ``summary`` (mean and 95 % interval per policy, point, metric, scope),
so they agree number for number with the tables beside them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

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
)
from kossim.report.fmt import fmt_value
from kossim.report.load import ResultsData, short_names

__all__ = ["SWEEP_METRICS", "agent_utilisation_figure", "bar_figure", "sweep_figures"]

SWEEP_METRICS: tuple[str, ...] = (
    "sojourn_mean",
    "sojourn_p95",
    "sojourn_p99",
    "wait_mean",
    "throughput",
    "utilization",
    "deadline_miss_rate",
)
"""Metrics drawn against swept parameters: the bar metrics plus the sojourn tail."""


def _scope_all(data: ResultsData) -> pd.DataFrame:
    assert data.summary is not None
    return data.summary[data.summary["scope"] == "all"]


def _present(frame: pd.DataFrame, metrics: tuple[str, ...]) -> list[str]:
    have = set(frame["metric"])
    return [m for m in metrics if m in have]


def _errors(mean: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Asymmetric whisker lengths; missing intervals (n = 1) draw no whisker."""
    return np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0).clip(min=0.0)


def _bar_panel(
    ax: Any, rows: pd.DataFrame, data: ResultsData, points: list[str], colours: dict[str, Any]
) -> None:
    """Grouped bars: one group per sweep point (or one bar per policy without a sweep)."""
    n = len(data.policies)
    width = 0.8 / n if data.swept else 0.7
    for i, policy in enumerate(data.policies):
        mine = rows[rows["policy"] == policy].set_index("point").reindex(points)
        mean, low, high = (mine[c].to_numpy(float) for c in ("mean", "ci_low", "ci_high"))
        x = np.arange(len(points)) + (i - (n - 1) / 2) * width if data.swept else np.array([i])
        ax.bar(
            x,
            mean,
            width,
            yerr=_errors(mean, low, high),
            capsize=3,
            color=colours[policy],
            edgecolor="white",
            error_kw={"lw": 1},
        )
    if data.swept:
        ax.set_xticks(np.arange(len(points)), points, rotation=20 if len(points) > 3 else 0)
    else:
        ax.set_xticks(
            np.arange(n),
            data.policies,
            rotation=25 if n > 3 else 0,
            ha="right" if n > 3 else "center",
        )
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def bar_figure(data: ResultsData, writer: PlotWriter) -> Figure | None:
    """Bar chart per key metric with 95 % CI whiskers, policies in their fixed colours."""
    frame = _scope_all(data)
    metrics = _present(frame, mm.BAR_METRICS)
    if not metrics:
        return None
    all_points = present(data.points, frame["point"])
    points = facet_points(all_points)
    colours = policy_colours(data.policies)
    fig, axes = panel_grid(len(metrics), width=5.6, height=3.6)
    for ax, metric in zip(axes, metrics, strict=True):
        _bar_panel(ax, frame[frame["metric"] == metric], data, points, colours)
        text, unit = mm.label(metric, data.metrics_meta)
        ax.set_title(text)
        ax.set_ylabel(unit)
    policy_legend(fig, present(data.policies, frame["policy"]), colours)
    shown = facet_note(len(points), len(all_points))
    return writer.save(
        fig, "bars", f"Mean per policy with 95 % confidence interval over seeds.{shown}"
    )


def _held_rows(
    rows: pd.DataFrame, path: str, swept: list[str]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Rows where every other swept path sits at its first value, and those values."""
    rows = rows[rows[path].notna()]
    held: dict[str, Any] = {}
    for other in swept:
        if other == path or rows.empty:
            continue
        values = rows[other].dropna()
        if values.empty:
            continue
        held[other] = values.iloc[0]
        rows = rows[rows[other].isna() | (rows[other] == held[other])]
    return rows, held


def _x_positions(frame: pd.DataFrame, path: str) -> tuple[dict[Any, float], list[Any] | None]:
    """Numeric sweeps plot at their values; others at evenly spaced, labelled positions."""
    values = list(pd.unique(frame[path].dropna()))
    if pd.api.types.is_numeric_dtype(frame[path]):
        return {v: float(v) for v in values}, None
    return {v: float(i) for i, v in enumerate(values)}, values


def _sweep_panel(
    ax: Any,
    rows: pd.DataFrame,
    data: ResultsData,
    path: str,
    colours: dict[str, Any],
    loads: dict[str, float] | None,
) -> dict[str, Any]:
    """Mean line with a shaded 95 % band per policy, against one swept path (or, with
    ``loads``, against the offered load of each point)."""
    xmap, ticks = _x_positions(rows, path)
    held_all: dict[str, Any] = {}
    for policy in data.policies:
        mine, held = _held_rows(rows[rows["policy"] == policy], path, data.swept)
        if mine.empty:
            continue
        held_all.update(held)
        x = (mine["point"].map(loads) if loads else mine[path].map(xmap)).to_numpy(float)
        order = np.argsort(x)
        mean, low, high = (mine[c].to_numpy(float)[order] for c in ("mean", "ci_low", "ci_high"))
        ax.plot(x[order], mean, marker="o", ms=4, color=colours[policy], label=policy)
        ax.fill_between(x[order], low, high, color=colours[policy], alpha=0.18, lw=0)
    if ticks is not None and not loads:
        ax.set_xticks(range(len(ticks)), [str(t) for t in ticks])
    if loads and max(loads.values()) >= 1.0:
        ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.grid(alpha=0.3)
    return held_all


def _offered_loads(data: ResultsData, frame: pd.DataFrame, path: str) -> dict[str, float] | None:
    """Offered load by point label when ``path`` changes it (a load sweep), else ``None``."""
    if len(data.sources) != 1:
        return None
    points = (data.manifest.get("load") or {}).get("points") or []
    loads = {str(p.get("label")): float(p["offered_load"]) for p in points}
    held, _ = _held_rows(frame, path, data.swept)
    here = [loads.get(str(pt)) for pt in pd.unique(held["point"])]
    if any(v is None or not np.isfinite(v) for v in here) or len(set(here)) < 2:
        return None
    return loads


def sweep_figures(data: ResultsData, writer: PlotWriter) -> list[Figure]:
    """For each swept path, key and tail metrics against it; other swept paths held at their
    first value. A path that changes the offered load is drawn against the offered load."""
    frame = _scope_all(data)
    metrics = _present(frame, SWEEP_METRICS)
    colours = policy_colours(data.policies)
    names = short_names(data.swept)
    figures = []
    for path in data.swept:
        if not metrics or frame[path].dropna().nunique() < 2:
            continue
        loads = _offered_loads(data, frame, path)
        fig, axes = panel_grid(len(metrics), width=5.6, height=3.6)
        held: dict[str, Any] = {}
        xlabel = f"offered load (varying {names[path]})" if loads else path
        for ax, metric in zip(axes, metrics, strict=True):
            rows = frame[frame["metric"] == metric]
            held.update(_sweep_panel(ax, rows, data, path, colours, loads))
            text, unit = mm.label(metric, data.metrics_meta)
            ax.set(title=text, ylabel=unit, xlabel=xlabel)
        policy_legend(fig, present(data.policies, frame["policy"]), colours)
        fixed = ", ".join(f"{names[k]}={fmt_value(v)}" for k, v in held.items())
        dashed = "; dashed: load 1" if loads and max(loads.values()) >= 1.0 else ""
        against = f"offered load (set by {path}{dashed})" if loads else path
        caption = f"Mean and 95 % band against {against}." + (f" Held: {fixed}." if fixed else "")
        figures.append(writer.save(fig, f"sweep_{names[path]}", caption))
    return figures


def agent_utilisation_figure(data: ResultsData, writer: PlotWriter) -> Figure | None:
    """Utilisation per agent at the last sweep point: bars, or a heat map beyond 20 agents."""
    if data.summary is None:
        return None
    frame = data.summary
    rows = frame[
        (frame["metric"] == "utilization") & frame["scope"].astype(str).str.startswith("agent=")
    ]
    point = data.points[-1] if data.points else ""
    rows = rows[rows["point"] == point]
    if rows.empty:
        return None
    rows = rows.assign(agent=rows["scope"].str.slice(len("agent=")))
    agents = sorted(pd.unique(rows["agent"]), key=natural_key)
    colours = policy_colours(data.policies)
    if len(agents) > 20:
        fig = _agent_heatmap(rows, data.policies, agents)
    else:
        fig, (ax,) = panel_grid(
            1,
            width=min(12.0, max(6.0, 0.5 * len(agents) * max(1, len(data.policies) / 2))),
            height=3.8,
            max_cols=1,
        )
        _agent_bars(ax, rows, data.policies, agents, colours)
        policy_legend(fig, present(data.policies, rows["policy"]), colours)
    where = f" at {point}" if point else ""
    return writer.save(fig, "agent_utilisation", f"Utilisation per agent{where}, mean over seeds.")


def _agent_bars(
    ax: Any, rows: pd.DataFrame, policies: list[str], agents: list[str], colours: dict[str, Any]
) -> None:
    n = len(policies)
    width = 0.8 / n
    for i, policy in enumerate(policies):
        mine = rows[rows["policy"] == policy].set_index("agent").reindex(agents)
        mean, low, high = (mine[c].to_numpy(float) for c in ("mean", "ci_low", "ci_high"))
        x = np.arange(len(agents)) + (i - (n - 1) / 2) * width
        ax.bar(x, mean, width, yerr=_errors(mean, low, high), capsize=2, color=colours[policy])
    ax.set_xticks(
        np.arange(len(agents)),
        agents,
        rotation=45 if len(agents) > 6 else 0,
        ha="right" if len(agents) > 6 else "center",
    )
    ax.set(xlabel="agent", ylabel="utilisation [fraction]", title="Utilisation per agent")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _agent_heatmap(rows: pd.DataFrame, policies: list[str], agents: list[str]) -> Any:
    """Policy x agent heat map: readable where 20+ bar groups would not be."""
    matrix = rows.pivot_table(index="policy", columns="agent", values="mean").reindex(
        index=policies, columns=agents
    )
    fig, (ax,) = panel_grid(
        1, width=min(18.0, 4 + 0.16 * len(agents)), height=1.2 + 0.45 * len(policies), max_cols=1
    )
    values = matrix.to_numpy(float)
    vmax = max(1.0, float(np.nanmax(values))) if np.isfinite(values).any() else 1.0
    image = ax.imshow(
        values, aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest"
    )
    ax.set_yticks(range(len(policies)), policies)
    step = max(1, len(agents) // 40)
    ax.set_xticks(range(0, len(agents), step), agents[::step], rotation=90, fontsize=7)
    ax.set(xlabel="agent", title="Utilisation per agent")
    fig.colorbar(image, ax=ax, label="utilisation [fraction]", fraction=0.03, pad=0.01)
    return fig

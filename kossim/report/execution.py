"""The report's view of the execution log: one task's whole life, and a timeline of
failures and suspicions (both from ``events.parquet``, written with ``--trace``)."""

from __future__ import annotations

import pandas as pd
from matplotlib.lines import Line2D

from kossim.report.figures import Figure, PlotWriter, natural_key, panel_grid, present
from kossim.report.load import ResultsData
from kossim.report.plots_time import scenario_marks, timeline_marks
from kossim.report.tables import Cell, Table
from kossim.trace import EventFilter, filter_events, life_of

__all__ = ["life_table", "timeline_figure"]

MAX_STEPS = 60
MARKS = {
    "crash": ("x", "#c0392b", "crash"),
    "repair": ("|", "#27ae60", "repair"),
    "suspect": ("v", "#e67e22", "suspected"),
    "trust": ("^", "#2e86c1", "trusted again"),
    "restart": ("|", "#27ae60", "repair"),  # a coordinator's host restarts it (failover)
    "takeover": ("*", "#8e44ad", "takes the lead"),  # a coordinator leads (failover)
}


def life_table(data: ResultsData) -> Table | None:
    """Every step of one task: arrival, routing, messages, starts, copies, ending."""
    events = data.events
    if events is None or events.empty:
        return None
    picked = life_of(events)
    if picked is None:
        return None
    policy, seed, task = picked
    steps = filter_events(events, EventFilter(policy=policy, seed=seed, task=task))
    point = str(steps["point"].iloc[0]) if "point" in steps and len(steps) else ""
    rows = [
        [
            Cell(f"{row.time:.4g}"),
            Cell(str(row.kind)),
            Cell(str(row.actor)),
            Cell(f"{row.src!s} -> {row.dst!s}" if row.src else ""),
            Cell(str(row.reason)),
        ]
        for row in steps.head(MAX_STEPS).itertuples()
    ]
    more = f"; the first {MAX_STEPS} of {len(steps)} steps" if len(steps) > MAX_STEPS else ""
    where = f", {point}" if point else ""
    return Table(
        f"Life of task {task} ({policy}, seed {seed}{where})",
        ["time", "step", "actor", "message", "reason"],
        rows,
        note=f"The task of that run with the most steps{more}. "
        f"`kossim trace DIR --policy {policy} --seed {seed} --task {task}` prints it too.",
        n_labels=5,
    )


def timeline_figure(data: ResultsData, writer: PlotWriter) -> Figure | None:
    """Crashes, repairs, suspicions and trust per agent over time, first seed, per policy."""
    events = data.events
    if events is None or events.empty:
        return None
    marked = events[events["kind"].isin(list(MARKS))]
    if marked.empty:
        return None
    seed = data.first_seed(marked)
    point = data.points[-1] if data.points else ""
    marked = marked[marked["seed"] == seed]
    if "point" in marked:
        marked = marked[marked["point"] == point]
    who = marked["fields"].astype(str).str.extract(r'"agent": "([^"]+)"')[0]
    marked = marked.assign(agent=who.fillna(marked["actor"]))
    policies = present(data.policies, marked["policy"])[:4]
    if not policies:
        return None
    agents = sorted(pd.unique(marked["agent"].astype(str)), key=natural_key)
    rank = {a: i for i, a in enumerate(agents)}
    fig, axes = panel_grid(len(policies), width=6.2, height=min(7.0, 1.4 + 0.25 * len(agents)))
    periods = scenario_marks(data, seed, point)
    for ax, policy in zip(axes, policies, strict=True):
        if periods is not None:
            timeline_marks(ax, periods[periods["policy"] == policy])
        mine = marked[marked["policy"] == policy]
        for kind, (marker, colour, label) in MARKS.items():
            rows = mine[mine["kind"] == kind]
            if not rows.empty:
                ys = [rank[a] for a in rows["agent"].astype(str)]
                ax.scatter(rows["time"], ys, marker=marker, color=colour, s=28, label=label)
        ax.set_yticks(range(len(agents)), agents, fontsize=7)
        ax.set_xlabel("time (simulated)")
        ax.set_title(policy)
    seen = set(marked["kind"])
    labels = {
        label: (marker, colour) for kind, (marker, colour, label) in MARKS.items() if kind in seen
    }  # a crash's repair and a coordinator's restart share one
    handles = [
        Line2D([], [], marker=marker, color=colour, linestyle="", label=label)
        for label, (marker, colour) in labels.items()
    ]
    fig.legend(handles=handles, loc="outside upper center", ncol=4, frameon=False)
    where = f", {point}" if point else ""
    caption = (
        f"Failures and the detector's verdicts per agent, seed {seed}{where}: a suspicion "
        "with no crash before it is a false one."
        + (" Grey: the scenario's timeline events." if periods is not None else "")
    )
    return writer.save(fig, "timeline", caption)

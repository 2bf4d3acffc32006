"""Shared plotting machinery: one colour per policy, facet choice, saving.

Every figure of a report colours a policy the same way (its index in the
manifest's policy order picks from a fixed palette), so a reader learns the
legend once. Figures are written to ``plots/`` and kept as base64 data URIs so
the HTML needs no other file.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # the report runs headless: CI, Dask workers, SSH sessions

import matplotlib.pyplot as plt
from matplotlib import colormaps
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D

__all__ = [
    "DPI",
    "MAX_PANELS",
    "Figure",
    "PlotWriter",
    "facet_note",
    "facet_points",
    "natural_key",
    "panel_grid",
    "policy_colours",
    "policy_legend",
    "present",
]

DPI = 110
MAX_PANELS = 6
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Figure:
    """A saved figure: its path relative to the report and its inline data URI."""

    name: str
    caption: str
    rel_path: str
    data_uri: str


def policy_colours(policies: list[str]) -> dict[str, Any]:
    """Fixed colour per policy by position: tab10, then tab20, then an even hue wheel."""
    n = len(policies)
    if n <= 10:
        cmap = colormaps["tab10"]
        return {p: cmap(i) for i, p in enumerate(policies)}
    if n <= 20:
        cmap = colormaps["tab20"]
        return {p: cmap(i) for i, p in enumerate(policies)}
    wheel = colormaps["hsv"]
    return {p: wheel(i / n) for i, p in enumerate(policies)}


def facet_points(points: list[str], limit: int = MAX_PANELS) -> list[str]:
    """At most ``limit`` sweep points, evenly spread and always keeping the last one."""
    if len(points) <= limit:
        return list(points)
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def facet_note(shown: int, total: int) -> str:
    """Caption suffix saying how many sweep points a faceted figure leaves out."""
    return "" if shown >= total else f" Sweep points shown: {shown} of {total}."


def present(order: list[str], values: Any) -> list[str]:
    """Items of ``order`` (policies or points) that occur in ``values``, in that order.

    Legends and facets list only what a figure draws: a policy whose every run
    failed keeps its colour but gets no legend entry.
    """
    seen = set(values)
    return [item for item in order if item in seen]


def natural_key(text: str) -> list[Any]:
    """Sort key that puts ``worker-2`` before ``worker-10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text))]


def panel_grid(
    n: int, width: float = 6.0, height: float = 3.6, max_cols: int = 2
) -> tuple[MplFigure, list[Any]]:
    """A figure of ``n`` panels in rows of up to ``max_cols``; spare axes removed."""
    cols = min(max_cols, max(n, 1))
    if n == 1 and max_cols > 1:
        width *= 1.6  # a lone panel (nothing swept) reads better wide
    rows = -(-max(n, 1) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained"
    )  # constrained layout also makes room for an "outside" legend: no bbox_inches="tight" pass
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def policy_legend(
    fig: MplFigure, policies: list[str], colours: dict[str, Any], lw: float = 6
) -> None:
    """One legend above all panels, so it never covers data and is not repeated per panel."""
    handles = [Line2D([], [], color=colours[p], lw=lw) for p in policies]
    entry = 0.7 + 0.09 * max(len(p) for p in policies)  # inches per entry at the default font
    ncol = max(1, min(len(policies), int(fig.get_figwidth() // entry)))
    fig.legend(handles, policies, loc="outside upper center", ncol=ncol, frameon=False)


class PlotWriter:
    """Saves figures to ``plots_dir`` and remembers them as :class:`Figure` records."""

    def __init__(self, plots_dir: Path) -> None:
        self.plots_dir = plots_dir
        plots_dir.mkdir(parents=True, exist_ok=True)

    def save(self, fig: MplFigure, name: str, caption: str) -> Figure:
        """Write ``fig`` as PNG, close it (figures leak memory otherwise), return the record."""
        stem = _SAFE.sub("_", name).strip("_") or "figure"
        path = self.plots_dir / f"{stem}.png"
        try:
            fig.savefig(path, dpi=DPI, metadata={"Software": None})
        finally:
            plt.close(fig)
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        return Figure(stem, caption, f"plots/{stem}.png", f"data:image/png;base64,{encoded}")

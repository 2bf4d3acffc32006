"""Shared plotting machinery: one colour per policy, facet choice, saving.

Every figure colours a policy the same way, and so does every report: the
colour follows the policy's name (a stable hash picks from a fixed palette;
only a clash within one report moves a policy to the next free colour), so a
reader learns the legend once. Task types use greys, never a policy colour.
Figures are written to ``plots/`` as PNG and SVG, and the PNG is kept as a
base64 data URI so the HTML needs no other file.
"""

from __future__ import annotations

import base64
import re
import zlib
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
    "ECDF_AXES",
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
    "type_colours",
]

DPI = 110
ECDF_AXES = ("auto", "linear", "log")
MAX_PANELS = 6
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Figure:
    """A saved figure: its path relative to the report and its inline data URI."""

    name: str
    caption: str
    rel_path: str
    data_uri: str


_HUES = (0, 1, 2, 3, 4, 5, 6, 8, 9)  # tab10 without its grey: greys mark task types and rules


def _palette() -> list[Any]:
    """tab10 without grey, then the same hues light from tab20: 18 distinguishable colours."""
    tab10, tab20 = colormaps["tab10"], colormaps["tab20"]
    return [tab10(i) for i in _HUES] + [tab20(2 * i + 1) for i in _HUES]


def policy_colours(policies: list[str]) -> dict[str, Any]:
    """A colour per policy fixed by its name; a clash takes the next free hue (names in
    alphabetical order keep theirs first), so reordering policies changes nothing.

    Beyond 18 policies the palette cannot keep them apart, so an even hue wheel
    by position is used instead.
    """
    palette = _palette()
    if len(policies) > len(palette):
        wheel = colormaps["hsv"]
        return {p: wheel(i / len(policies)) for i, p in enumerate(policies)}
    n = len(_HUES)
    taken: set[int] = set()
    colours = {}
    for policy in sorted(policies):  # by name, so file order does not move colours
        home = zlib.crc32(policy.encode()) % n
        ring = [(home + k) % n for k in range(n)] + [n + (home + k) % n for k in range(n)]
        index = next(i for i in ring if i not in taken)  # saturated hues before light ones
        taken.add(index)
        colours[policy] = palette[index]
    return {p: colours[p] for p in policies}


def type_colours(types: list[str]) -> dict[str, Any]:
    """Task types in greys, light to dark, so they are never mistaken for a policy."""
    greys = colormaps["Greys"]
    n = max(len(types), 1)
    return {t: greys(0.25 + 0.6 * i / max(n - 1, 1)) for i, t in enumerate(types)}


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

    def __init__(self, plots_dir: Path, ecdf_axis: str = "auto") -> None:
        if ecdf_axis not in ECDF_AXES:
            raise ValueError(f"ecdf_axis is one of {', '.join(ECDF_AXES)} (got {ecdf_axis!r})")
        self.plots_dir = plots_dir
        self.ecdf_axis = ecdf_axis
        """x axis of sojourn ECDFs: ``linear``, ``log``, or ``auto`` (log when spread wide)."""
        plots_dir.mkdir(parents=True, exist_ok=True)

    def save(self, fig: MplFigure, name: str, caption: str) -> Figure:
        """Write ``fig`` as PNG and SVG, close it (figures leak memory), return the record."""
        stem = _SAFE.sub("_", name).strip("_") or "figure"
        path = self.plots_dir / f"{stem}.png"
        try:
            fig.savefig(path, dpi=DPI, metadata={"Software": None})
            # SVG for papers and slides; no date or tool stamp, so reruns give the same bytes
            fig.savefig(path.with_suffix(".svg"), metadata={"Date": None, "Creator": None})
        finally:
            plt.close(fig)
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        return Figure(stem, caption, f"plots/{stem}.png", f"data:image/png;base64,{encoded}")

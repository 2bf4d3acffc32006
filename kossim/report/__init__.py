"""Comparison reports of a kossim results folder: HTML, Markdown and PNG plots.

The report reads only the files of a results folder (see docs/contracts.md) and
never runs a simulation, so it can be rebuilt, restyled or compared across
experiments at any time. ``report.html`` is self-contained (images inlined, no
network); ``report.md`` says the same and links ``plots/*.png``.

The renderers are imported lazily: ``kossim.report.metrics_meta`` (metric
directions and labels) is light, and importing it must not pull in matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kossim.report.metrics_meta import METRIC_DIRECTION, METRIC_LABEL

if TYPE_CHECKING:
    from kossim.report.render import render_comparison, render_report

__all__ = ["METRIC_DIRECTION", "METRIC_LABEL", "render_comparison", "render_report"]


def __getattr__(name: str) -> Any:
    if name in ("render_report", "render_comparison"):
        from kossim.report import render

        return getattr(render, name)
    raise AttributeError(f"module 'kossim.report' has no attribute {name!r}")

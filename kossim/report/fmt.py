"""Number and value formatting shared by tables, labels and plots.

Four significant digits: enough to tell policies apart, few enough to read.
Numbers of 10,000 and more are shown in whole units with separators
(``143,897``) instead: an exponent in a table of task counts reads as noise,
and rounding counts to four digits would hide the differences that matter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MINUS",
    "MISSING",
    "fmt_ci",
    "fmt_num",
    "fmt_p",
    "fmt_value",
    "point_label",
    "short_names",
]

MISSING = "\u2013"
"""En dash shown where a value does not exist (no run, no interval with n = 1)."""
MINUS = "\u2212"
"""Typographic minus for "policy minus baseline" in headings."""


def fmt_num(x: Any, digits: int = 4) -> str:
    """``x`` to ``digits`` significant digits; ``MISSING`` for missing values."""
    if x is None:
        return MISSING
    try:
        value = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if digits <= magnitude < 15:
        return f"{value:,.0f}"  # whole units: rounding 143,897 tasks to 143,900 hides differences
    return f"{value:.{digits}g}"


def fmt_value(value: Any) -> str:
    """A swept parameter value as it would be written in YAML."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "item") and not isinstance(value, str):
        return fmt_value(value.item())
    return str(value)


def fmt_ci(mean: Any, low: Any, high: Any) -> str:
    """``mean ± half-width`` of a confidence interval (the mean alone when n = 1)."""
    try:
        half = (float(high) - float(low)) / 2
    except (TypeError, ValueError):
        half = math.nan
    if math.isnan(half):
        return fmt_num(mean)
    return f"{fmt_num(mean)} ± {fmt_num(abs(half))}"


def fmt_p(p: float) -> str:
    """A p-value; tiny ones as ``<0.0001`` so the table does not shout exponents."""
    if math.isnan(p):
        return MISSING
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def short_names(swept: list[str]) -> dict[str, str]:
    """Last component of each dotted path, or the whole path when that is ambiguous."""
    last = [p.rsplit(".", 1)[-1] for p in swept]
    return {p: (s if last.count(s) == 1 else p) for p, s in zip(swept, last, strict=True)}


def point_label(values: Mapping[Any, Any], swept: list[str]) -> str:
    """``rate=7.2, d=2`` for the swept values present (missing or NaN values skipped)."""
    names = short_names(swept)
    parts = []
    for path in swept:
        value = values.get(path)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        parts.append(f"{names[path]}={fmt_value(value)}")
    return ", ".join(parts)

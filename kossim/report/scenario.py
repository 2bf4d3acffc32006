"""The scenario as run: offered load per sweep point and the resolved configuration.

Both come from the manifest (``load`` written after a run, ``config`` the
experiment with ``--set`` overrides applied), so the report describes what was
simulated rather than what the file's comments say.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML

from kossim.report.fmt import fmt_num
from kossim.report.tables import Cell, Table

__all__ = ["config_yaml", "offered_load_table"]


def offered_load_table(points: list[dict[str, Any]], label: str, n_sources: int) -> Table:
    """One row per sweep point: its offered load, and per skill pool where pools differ."""
    pools = sorted({name for p in points for name in (p.get("pools") or {})})
    swept = any(p.get("label") for p in points)
    head = ["sweep point"] if swept else []
    table = Table(
        f"{label}: offered load" if n_sources > 1 else "Offered load",
        [*head, "offered load", *(f"pool {name}" for name in pools), "state"],
        n_labels=len(head),
    )
    for p in points:
        load = float(p["offered_load"])
        state = "overloaded" if load >= 1 else "near saturation" if load >= 0.95 else "stable"
        cells = [Cell(fmt_num(load), css="worse" if load >= 1 else "")]
        cells += [Cell(fmt_num((p.get("pools") or {}).get(name, float("nan")))) for name in pools]
        lead = [Cell(str(p.get("label") or ""))] if swept else []
        table.rows.append([*lead, *cells, Cell(state, css="worse" if load >= 1 else "")])
    return table


def config_yaml(config: dict[str, Any]) -> str:
    """The configuration as YAML, in the file's key order."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    buffer = io.StringIO()
    yaml.dump(config, buffer)
    return buffer.getvalue()

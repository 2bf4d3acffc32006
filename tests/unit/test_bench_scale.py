"""``kossim bench --scale``: a figure per component, variant and fleet size (never its
timings: they are CPU time on a shared machine)."""

from __future__ import annotations

import contextlib
import io

import pytest


def test_quick_scale_bench_measures_every_case_and_variant() -> None:
    """``kossim bench --scale --quick``: a figure per component, variant and size (its
    values are timings on a shared machine: only their presence and sign are checked)."""
    from kossim.bench.scale import CASES, QUICK_SIZES, VARIANTS, print_scale, run_scale

    report = run_scale(quick=True, repeat=1, cases=("central", "jsq"))
    assert set(report.figures) == {(c, v) for c in ("central", "jsq") for v in VARIANTS}
    assert all(len(row) == len(QUICK_SIZES) and min(row) >= 0 for row in report.figures.values())
    assert {c for c, _, _ in CASES} >= {"central", "random", "round_robin", "jsq", "least_work"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_scale(report)
    assert "jsq" in out.getvalue() and "latency" in out.getvalue()


def test_scale_config_variants_add_failures_and_latency() -> None:
    from kossim.bench.scale import scale_config

    plain = scale_config(10, "push", "jsq", "plain", 100)["scenario"]
    assert "failures" not in plain and "network" not in plain
    assert "agents" in scale_config(10, "push", "jsq", "failures", 100)["scenario"]["failures"]
    lat = scale_config(10, "push", "jsq", "latency", 100)["scenario"]["network"]
    assert lat["latency"] == {"dist": "constant", "value": 0.05}
    with pytest.raises(ValueError):
        scale_config(10, "push", "jsq", "storm", 100)

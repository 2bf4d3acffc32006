"""``kossim bench --scale``: a figure per component, variant and fleet size (never its
timings: they are CPU time on a shared machine)."""

from __future__ import annotations

import contextlib
import io

import pytest


def test_quick_scale_bench_measures_every_case_and_variant() -> None:
    """``kossim bench --scale --quick``: a CPU figure and a peak RSS per component, variant
    and size, and the SimPy reference row (values are timings and memory on a shared
    machine: only their presence and sign are checked)."""
    from kossim.bench.scale import CASES, QUICK_SIZES, SIMPY, VARIANTS, print_scale, run_scale

    report = run_scale(quick=True, repeat=1, cases=("jsq",))
    keys = {("jsq", v) for v in VARIANTS} | {(SIMPY, "plain")}
    assert set(report.figures) == keys and set(report.rss) == keys
    assert all(len(row) == len(QUICK_SIZES) and min(row) >= 0 for row in report.figures.values())
    for row in report.rss.values():
        assert len(row) == len(QUICK_SIZES)
        assert all(0 < r.base_mib <= r.peak_mib and r.cpu_seconds > 0 for r in row)
    # the SimPy child loads only SimPy: its baseline is below the engine's
    assert report.rss[(SIMPY, "plain")][0].base_mib < report.rss[("jsq", "plain")][0].base_mib
    assert {c for c, _, _ in CASES} >= {"central", "random", "round_robin", "jsq", "least_work"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_scale(report)
    text = out.getvalue()
    assert "jsq" in text and "latency" in text and SIMPY in text and "post-import RSS" in text


def test_run_length_table_has_a_row_per_length() -> None:
    """Run lengths: CPU and whole-process peak RSS of kossim and of the SimPy model, per
    length, each in a fresh interpreter; 10 million tasks only with ``--long``."""
    from kossim.bench.runlength import (
        LENGTHS,
        lengths_for,
        print_run_lengths,
        run_lengths,
    )

    assert lengths_for() == LENGTHS == (50_000, 200_000, 1_000_000)
    assert lengths_for(long=True)[-1] == 10_000_000
    report = run_lengths((500, 1_000))
    assert len(report.kossim) == len(report.simpy) == len(report.command) == 2
    assert all(0 < r.base_mib <= r.peak_mib for r in report.kossim + report.simpy)
    # the whole command loads more than simulate's imports (pyarrow, scipy.special, ...)
    assert all(c.peak_mib > k.base_mib for c, k in zip(report.command, report.kossim, strict=True))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_run_lengths(report)
    lines = out.getvalue().splitlines()
    assert any(line.split()[0] == "1,000" for line in lines if line.strip())


def test_scale_config_variants_add_failures_and_latency() -> None:
    from kossim.bench.scale import scale_config

    plain = scale_config(10, "push", "jsq", "plain", 100)["scenario"]
    assert "failures" not in plain and "network" not in plain
    assert "agents" in scale_config(10, "push", "jsq", "failures", 100)["scenario"]["failures"]
    lat = scale_config(10, "push", "jsq", "latency", 100)["scenario"]["network"]
    assert lat["latency"] == {"dist": "constant", "value": 0.05}
    with pytest.raises(ValueError):
        scale_config(10, "push", "jsq", "storm", 100)


def test_rows_print_their_growth_over_the_simpy_models_own() -> None:
    """The /simpy column: a row's growth (last size over first) over the reference row's."""
    from kossim.bench.scale import SIMPY, ScaleReport, format_row

    report = ScaleReport(sizes=(10, 10_000), repeat=1)
    report.figures[(SIMPY, "plain")] = [10.0, 60.0]
    report.figures[("jsq", "plain")] = [8.0, 36.0]
    assert report.growth(("jsq", "plain")) == 4.5
    assert report.relative(("jsq", "plain")) == 0.75
    assert format_row("jsq", "plain", [8.0, 36.0], None, 6.0).split()[-2:] == ["4.5x", "0.75x"]
    assert format_row("jsq", "plain", [8.0, 36.0]).split()[-1] == "4.5x"  # no reference yet


def test_scale_cases_set_queue_limits_and_trust_gates() -> None:
    from kossim.bench.scale import scale_config

    limited = scale_config(100, "push", "jsq", "plain", 100, "queue_limit")["scenario"]
    assert limited["agents"][0]["queue_limit"] == 3
    gated = scale_config(100, "push", "jsq", "failures", 100, "trust_gated")
    assert gated["policies"][0]["coordinator"]["id"] == "trust_gated"
    assert [g["count"] for g in gated["scenario"]["agents"]] == [75, 25]
    assert {t.get("criticality", "high") for t in gated["scenario"]["workload"]["tasks"]} == {
        "low",
        "high",
    }


def test_scale_module_options_are_checked() -> None:
    """``python -m kossim.bench.scale`` parses its options and refuses what it does not know,
    instead of running the whole table on a typo or on ``--help``."""
    from kossim.bench.scale import VARIANTS, _cli

    opts = _cli(["jsq", "--sizes=10,10000", "--no-memory", "--variants=plain"])
    assert (opts.cases, opts.sizes, opts.no_memory, opts.variants) == (
        ["jsq"],
        (10, 10_000),
        True,
        ("plain",),
    )
    assert _cli([]).variants == VARIANTS
    for bad in (["--sizes=10,x"], ["jsqq"], ["--variants=plain,slow"], ["--bogus"]):
        with pytest.raises(SystemExit) as stop:
            _cli(bad)
        assert stop.value.code == 2

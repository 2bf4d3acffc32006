"""Behaviour of the comparison report, on a small results folder built from fixed numbers.

The folder follows docs/contracts.md: three policies, one swept parameter with
two values, three seeds, distributions, time series, a task trace and one
failed run. The numbers are constructed so the right answers are known:
``central`` has the lowest mean sojourn, ``pod2`` the highest throughput, and
``random`` is exactly 1.5 slower than ``central`` on every (seed, point) pair
up to a zero-mean wobble, so its paired difference is 1.5 and significant.
"""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kossim.report import METRIC_DIRECTION, METRIC_LABEL, render_comparison, render_report
from kossim.report.fmt import fmt_num
from kossim.report.inference import paired_difference
from kossim.report.load import load_results
from kossim.report.tables import paired_tables
from kossim.report.verdicts import Judge

POLICIES = ["central", "random", "pod2"]
RATE = "scenario.workload.arrivals.rate"
RATES = [6.0, 7.2]
SEEDS = [1, 2, 3]
AGENTS = ["worker-1", "worker-2", "worker-3", "worker-4"]
FAILED = ("pod2", 7.2, 3)
TRACEBACK = (
    'Traceback (most recent call last):\n  File "x.py", line 1\nZeroDivisionError: boom in pod2'
)
WOBBLE = {1: -0.1, 2: 0.0, 3: 0.1}


def _sojourn(policy: str, rate: float, seed: int) -> float:
    """central < pod2 < random; random - central = 1.5 + wobble (mean wobble 0)."""
    base = 2.0 + (rate - 6.0) + 0.05 * seed
    return base + {"central": 0.0, "random": 1.5 + WOBBLE[seed], "pod2": 0.4}[policy]


def _metric_rows(policy: str, rate: float, seed: int) -> list[tuple[str, str, float]]:
    sojourn = _sojourn(policy, rate, seed)
    throughput = rate * {"central": 0.97, "random": 0.95, "pod2": 0.99}[policy] + 0.01 * seed
    rows = [
        ("sojourn_mean", "all", sojourn),
        ("wait_mean", "all", sojourn - 1.0),
        ("sojourn_p95", "all", 3 * sojourn),
        ("throughput", "all", throughput),
        ("utilization", "all", rate / 8),
        ("arrived", "all", 1000.0 * rate),
        ("lost", "all", 0.0),
        ("deadline_miss_rate", "all", 0.01 * sojourn),
    ]
    for tier in (0, 1):
        rows += [
            ("sojourn_mean", f"priority={tier}", sojourn + tier),
            ("wait_mean", f"priority={tier}", sojourn - 1 + tier),
        ]
    for kind, extra in (("etl", 0.5), ("chat", -0.5)):
        rows += [
            ("sojourn_mean", f"type={kind}", sojourn + extra),
            ("wait_mean", f"type={kind}", sojourn - 1 + extra),
        ]
    rows += [("utilization", f"agent={a}", rate / 8 + 0.02 * i) for i, a in enumerate(AGENTS)]
    return rows


def _ok(policy: str, rate: float, seed: int) -> bool:
    return (policy, rate, seed) != FAILED


def _tasks(policy: str, rate: float, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    arrival = 0.0
    free = dict.fromkeys(AGENTS, 0.0)
    for task in range(80):
        arrival += float(rng.exponential(1 / rate))
        agent = min(free, key=free.__getitem__)
        start = max(arrival, free[agent])
        end = start + float(rng.exponential(0.5))
        free[agent] = end
        kind = "etl" if task % 3 else "chat"
        rows.append(
            {
                "task": task,
                "type": kind,
                "priority": task % 2,
                "arrival": arrival,
                "start": start,
                "end": end,
                "agent": agent,
                "attempts": 1,
                "state": "completed",
                "deadline": arrival + 5,
                "measured": arrival >= 2.0,
            }
        )
    return rows


def _frame(make: object) -> pd.DataFrame:
    rows = []
    for policy in POLICIES:
        for rate in RATES:
            for seed in SEEDS:
                if _ok(policy, rate, seed):
                    for extra in make(policy, rate, seed):  # type: ignore[operator]
                        rows.append({"policy": policy, "seed": seed, RATE: rate, **extra})
    return pd.DataFrame(rows)


def _manifest(name: str) -> dict[str, object]:
    runs = [
        {
            "run_id": f"{p}-{r}-{s}",
            "policy": p,
            "point": {RATE: r},
            "seed": s,
            "status": "ok" if _ok(p, r, s) else "failed",
            "wall_time": 0.1,
            "error": None if _ok(p, r, s) else TRACEBACK,
        }
        for p in POLICIES
        for r in RATES
        for s in SEEDS
    ]
    return {
        "name": name,
        "description": "Synthetic folder for report tests.",
        "kossim_version": "0.1.0",
        "git_commit": "abc1234",
        "config_hash": "ffff",
        "config": {},
        "seeds": SEEDS,
        "policies": POLICIES,
        "sweep": {RATE: RATES},
        "swept": [RATE],
        "executor": "local",
        "jobs": 2,
        "wall_time": 12.5,
        "created": "2025-01-01T00:00:00",
        "runs": runs,
        "n_runs": len(runs),
        "n_failed": 1,
        "warmup": 2.0,
        "horizon": 20.0,
        "metrics_meta": {},
        "load": {
            "points": [
                {"point": {RATE: r}, "label": f"rate={r:g}", "offered_load": r / 8, "pools": {}}
                for r in RATES
            ],
            "warnings": [],
        },
    }


def build_results(folder: Path, name: str = "synthetic", shift: float = 0.0) -> Path:
    """Write a complete results folder; ``shift`` moves every metric value."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = _frame(
        lambda p, r, s: [
            {"metric": m, "scope": sc, "value": v + shift} for m, sc, v in _metric_rows(p, r, s)
        ]
    )
    metrics.to_parquet(folder / "metrics.parquet")
    summary = metrics.groupby(["policy", RATE, "metric", "scope"], sort=False)["value"]
    table = summary.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    half = stats.t.ppf(0.975, table["n"] - 1) * table["std"] / np.sqrt(table["n"])
    table["ci_low"], table["ci_high"] = table["mean"] - half, table["mean"] + half
    table.to_csv(folder / "summary.csv", index=False)
    grid = np.linspace(0, 1, 101)
    dist = _frame(
        lambda p, r, s: [
            {
                "variable": "sojourn",
                "quantile": q,
                "value": -_sojourn(p, r, s) * math.log(1 - min(q, 0.995)),
            }
            for q in grid
        ]
    )
    dist.to_parquet(folder / "distributions.parquet")
    series = _frame(
        lambda p, r, s: [
            {
                "variable": "in_system",
                "time": float(t),
                "value": float(round(r * (1 + math.sin(t / 3 + s)) + len(p))),
            }
            for t in range(21)
        ]
    )
    series.to_parquet(folder / "timeseries.parquet")
    _frame(_tasks).to_parquet(folder / "tasks.parquet")
    (folder / "manifest.json").write_text(json.dumps(_manifest(name)))
    return folder


class _Tables(HTMLParser):
    """Collects each HTML table as (title of the preceding <h3>, rows of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self._title = ""
        self._text: list[str] | None = None
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append((self._title, []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        if tag in ("h3", "td", "th"):
            self._text, self._tag = [], tag

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag != self._tag or self._text is None:
            return
        text = "".join(self._text).strip()
        if tag == "h3":
            self._title = text
        else:
            self.tables[-1][1][-1].append(text)
        self._text = None


def _tables(html: str, title_start: str) -> list[list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return [rows for title, rows in parser.tables if title.startswith(title_start)]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = build_results(tmp_path_factory.mktemp("results") / "synthetic")
    html_path = render_report(folder)
    return folder, html_path.read_text()


def test_writes_html_markdown_and_plots(rendered: tuple[Path, str]) -> None:
    """report.html, report.md and the plots land in the results folder."""
    folder, _ = rendered
    assert (folder / "report.html").is_file()
    markdown = (folder / "report.md").read_text()
    plots = sorted(p.name for p in (folder / "plots").glob("*.png"))
    for name in (
        "bars.png",
        "sojourn_ecdf.png",
        "seeds_sojourn_mean.png",
        "sweep_rate.png",
        "agent_utilisation.png",
        "in_system.png",
        "gantt.png",
    ):
        assert name in plots
        assert f"](plots/{name})" in markdown
        assert (folder / "plots" / name).with_suffix(".svg").is_file()  # vector copy


def test_html_is_self_contained(rendered: tuple[Path, str]) -> None:
    """No external reference: images are inline PNG data URIs; no script, no stylesheet link."""
    _, html = rendered
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<script" not in html and "<link" not in html
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) >= 7
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "could not be drawn" not in html


def test_best_mark_follows_metric_direction(rendered: tuple[Path, str]) -> None:
    """Lower-is-better sojourn stars central, higher-is-better throughput pod2, neutral none."""
    _, html = rendered
    winners = {"sojourn_mean: mean": "central", "throughput: throughput": "pod2"}
    for title, winner in winners.items():
        (table,) = _tables(html, title)
        header, *rows = table
        assert len(rows) == len(RATES)
        for row in rows:
            starred = [header[i] for i, cell in enumerate(row) if "★" in cell]
            assert starred == [winner]
    (utilisation,) = _tables(html, "utilization: utilisation")
    assert not any("★" in cell for row in utilisation for cell in row)


def test_headline_names_winners_with_percent_interval_and_p(rendered: tuple[Path, str]) -> None:
    """The first section answers who wins: central (the baseline) on sojourn with pod2 next,
    +0.4 / 2.1 = +19.0 % at rate 6; pod2 on throughput, +0.12 / 5.84 = +2.1 %."""
    folder, html = rendered
    markdown = (folder / "report.md").read_text()
    assert markdown.index("## Headline") < markdown.index("## synthetic")  # above provenance
    (table,) = _tables(html, "")[:1]
    header, *rows = table
    cells = {(r[0], r[1]): dict(zip(header, r, strict=True)) for r in rows}
    sojourn = cells[("sojourn_mean", "rate=6")]
    assert sojourn["result (paired t test, 5 %)"] == "central (baseline) wins; next best pod2"
    assert sojourn["policy"] == "pod2" and sojourn["vs central"] == "+19.0 %"
    throughput = cells[("throughput", "rate=6")]
    assert throughput["result (paired t test, 5 %)"] == "pod2 wins"
    assert throughput["vs central"] == "+2.1 %" and throughput["p"] == "<0.0001"
    assert not any(r[0] == "utilization" for r in rows)  # neutral: never judged


def test_paired_difference_table(rendered: tuple[Path, str]) -> None:
    """random - central on sojourn_mean is 1.5 over all pairs, marked ** and 'worse'."""
    _, html = rendered
    (table,) = _tables(html, "sojourn_mean: policy")
    header, *rows = table
    pooled = next(r for r in rows if r[0] == "random" and r[1] == "all points")
    cell = dict(zip(header, pooled, strict=True))
    assert cell["pairs"] == str(len(RATES) * len(SEEDS))
    assert cell["mean difference"] == "1.5"
    assert cell["sig."] == "**"
    assert cell["verdict"] == "worse"
    pod2 = next(r for r in rows if r[0] == "pod2" and r[1] == "all points")
    assert dict(zip(header, pod2, strict=True))["pairs"] == str(len(RATES) * len(SEEDS) - 1)


def test_failed_run_is_listed_with_traceback(rendered: tuple[Path, str]) -> None:
    """The failed run's policy, point, seed and traceback text are in both outputs."""
    folder, html = rendered
    assert "1 failed run of 18" in html
    assert "pod2, rate=7.2, seed 3" in html
    assert "ZeroDivisionError: boom in pod2" in html
    assert "ZeroDivisionError: boom in pod2" in (folder / "report.md").read_text()


def test_missing_optional_files_become_notes(tmp_path: Path) -> None:
    """Without distributions, time series, tasks and summary, the report renders with notes."""
    folder = build_results(tmp_path / "partial")
    for name in ("distributions.parquet", "timeseries.parquet", "tasks.parquet", "summary.csv"):
        (folder / name).unlink()
    html = render_report(folder).read_text()
    assert "distributions.parquet is absent" in html
    assert "timeseries.parquet is absent" in html
    assert "tasks.parquet is absent" in html
    assert "could not be drawn" not in html
    (table,) = _tables(html, "sojourn_mean: mean")  # summary recomputed from metrics.parquet
    assert "★" in table[1][1]
    assert not (folder / "plots" / "gantt.png").exists()


def test_only_manifest_still_renders(tmp_path: Path) -> None:
    """A folder holding only manifest.json yields a report of notes, not an exception."""
    folder = build_results(tmp_path / "bare")
    for name in (
        "metrics.parquet",
        "distributions.parquet",
        "timeseries.parquet",
        "tasks.parquet",
        "summary.csv",
    ):
        (folder / name).unlink()
    html = render_report(folder, out_dir=tmp_path / "out").read_text()
    assert "metrics.parquet is absent" in html
    assert "ZeroDivisionError: boom in pod2" in html
    assert "could not be drawn" not in html


def test_baseline_argument(tmp_path: Path) -> None:
    """The baseline can be chosen; an unknown one fails naming the policies and a close match."""
    folder = build_results(tmp_path / "base")
    (table,) = [
        t
        for t in paired_tables(load_results(folder), "random")
        if t.title.startswith("sojourn_mean")
    ]
    pooled = next(r for r in table.rows if r[0].text == "central" and r[1].text == "all points")
    assert pooled[3].text == "-1.5"
    assert "random" not in {r[0].text for r in table.rows}
    with pytest.raises(ValueError, match="did you mean 'random'"):
        render_report(folder, baseline="randon", out_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "report.html").exists()


def test_render_comparison_prefixes_policies(tmp_path: Path) -> None:
    """Two folders become one report whose policies are prefixed with the folder names."""
    first = build_results(tmp_path / "expA", name="A")
    second = build_results(tmp_path / "expB", name="B", shift=10.0)
    (second / "tasks.parquet").unlink()  # a folder traced, the other not
    html_path = render_comparison([first, second], tmp_path / "cmp")
    html = html_path.read_text()
    assert html_path == tmp_path / "cmp" / "report.html"
    assert (tmp_path / "cmp" / "report.md").is_file()
    (table,) = _tables(html, "sojourn_mean: policy")
    policies = {row[0] for row in table[1:]}
    assert {"expA/random", "expB/central"} <= policies
    pooled = next(r for r in table[1:] if r[0] == "expB/central" and r[1] == "all points")
    assert pooled[3] == "10"  # shifted copy of the baseline
    assert html.count("ZeroDivisionError: boom in pod2") == 2
    assert "expB/pod2" in html
    assert "tasks.parquet is absent from" in html
    assert (tmp_path / "cmp" / "plots" / "gantt.png").is_file()


def test_paired_difference_matches_scipy() -> None:
    """The paired t interval and p-value agree with scipy's ttest_rel."""
    a = np.array([3.1, 2.9, 3.4, 3.0, 3.3])
    b = np.array([2.0, 2.2, 2.1, 1.9, 2.4])
    result = paired_difference(a - b)
    test = stats.ttest_rel(a, b)
    low, high = test.confidence_interval(0.95)
    assert result.n == 5
    assert result.mean == pytest.approx(float(np.mean(a - b)))
    assert result.p_value == pytest.approx(test.pvalue)
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert paired_difference(np.array([2.0, 2.0, 2.0])).p_value == 0.0
    assert paired_difference(np.zeros(3)).stars == ""


def test_load_sweep_is_drawn_against_offered_load_with_the_tail(
    rendered: tuple[Path, str],
) -> None:
    """The rate sweep changes the offered load (6/8, 7.2/8), so its figure uses it as x axis
    and draws the 95th and 99th percentile sojourn beside the means."""
    folder, _ = rendered
    markdown = (folder / "report.md").read_text()
    assert "Mean and 95 % band against offered load (set by " + RATE + ")." in markdown
    svg = (folder / "plots" / "sweep_rate.svg").read_text()
    assert "offered load (varying rate)" in svg
    assert "95th percentile sojourn" in svg


def test_policy_colours_follow_names_and_task_types_are_grey() -> None:
    """A policy keeps its colour whatever the order and company; task types are greys,
    which no policy gets."""
    from kossim.report.figures import policy_colours, type_colours

    four = policy_colours(["central", "random", "jsq", "pod2"])
    assert four == policy_colours(["pod2", "jsq", "random", "central"])
    assert policy_colours(["jsq", "pod2"]) == {p: four[p] for p in ("jsq", "pod2")}
    assert len(set(four.values())) == 4
    greys = type_colours(["etl", "chat", "batch"])
    assert all(r == g == b for r, g, b, _ in greys.values())
    assert not any(
        r == g == b for r, g, b, _ in policy_colours([f"p{i}" for i in range(18)]).values()
    )


def test_ecdf_axis_is_log_when_asked_or_when_spread_wide(tmp_path: Path) -> None:
    """`ecdf_axis="log"` draws a log x axis and says so; `auto` keeps the synthetic folder
    linear (largest p99 / smallest median = 3.5 x 4.6 / (2 x 0.69), about 12 < 30) and
    turns log once one policy is 100 times slower."""
    from kossim.report.figures import PlotWriter
    from kossim.report.plots_time import ecdf_figure

    data = load_results(build_results(tmp_path / "log"))

    def caption(axis: str) -> str:
        figure = ecdf_figure(data, PlotWriter(tmp_path / "plots", axis))
        assert figure is not None
        return figure.caption

    assert "logarithmic x axis" in caption("log")
    assert "x axis cut at the largest 99th percentile" in caption("auto")
    assert data.distributions is not None
    slow = data.distributions["policy"] == "random"
    data.distributions.loc[slow, "value"] *= 100
    assert "logarithmic x axis" in caption("auto")
    assert "x axis cut at the largest 99th percentile" in caption("linear")


def test_number_format() -> None:
    """4 significant digits, thousands separators, an en dash for NaN."""
    assert [fmt_num(x) for x in (1.23456, 0.000123456, 12345.6, -2.5, math.nan)] == [
        "1.235",
        "0.0001235",
        "12,346",
        "-2.5",
        "\u2013",
    ]


def _judge(values: dict[str, list[float]]) -> Judge:
    rows = [
        {"policy": p, "seed": i, "point": "", "metric": "m", "scope": "all", "value": v}
        for p, vs in values.items()
        for i, v in enumerate(vs)
    ]
    return Judge(pd.DataFrame(rows), list(values))


def test_a_winner_must_beat_the_runner_up_significantly() -> None:
    """Best mean alone is not enough: a runner-up within noise (paired) means no winner;
    a neutral metric never has one; a constant paired gap is a sure win."""
    noisy = _judge({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.2, 1.9, 3.3, 3.9], "c": [9.0] * 4})
    standing = noisy.standing("m", "all", "", -1)
    assert standing.best == "a" and standing.ties == ("b",) and standing.winner is None
    assert noisy.winners("m", "all", "", -1) == set()
    assert noisy.winners("m", "all", "", 0) == set()
    sure = _judge({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.5, 2.5, 3.5, 4.5]})
    assert sure.winners("m", "all", "", -1) == {"a"}
    assert sure.winners("m", "all", "", +1) == {"b"}
    tied = _judge({"a": [5.0, 5.0, 5.0], "b": [5.0, 5.0, 5.0]})
    assert tied.winners("m", "all", "", +1) == set()


def test_a_significant_but_tiny_gap_is_not_a_win() -> None:
    """A constant 0.5 gap on means near 101 is certain (p = 0) but under 1 %: no winner in
    the tables, and 'negligible' rather than better or worse in the paired verdicts."""
    from kossim.report.inference import PairedDifference
    from kossim.report.tables import _verdict

    judge = _judge({"a": [100.0, 101.0, 102.0, 103.0], "b": [100.5, 101.5, 102.5, 103.5]})
    assert judge.standing("m", "all", "", -1).ties == ("b",)
    assert judge.winners("m", "all", "", -1) == set()
    certain = PairedDifference(4, 0.5, 0.5, 0.5, 0.0)
    assert _verdict(certain, -1, 101.5).text == "negligible"
    assert _verdict(certain, -1, 10.0).text == "worse"


def test_metric_tables_cover_core_metrics() -> None:
    """Every core metric has a direction and a label."""
    assert set(METRIC_DIRECTION) == set(METRIC_LABEL)
    assert METRIC_DIRECTION["sojourn_mean"] == -1
    assert METRIC_DIRECTION["throughput"] == +1
    assert METRIC_DIRECTION["utilization"] == 0

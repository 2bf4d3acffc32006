"""The report's sections, in reading order, as plain data for the templates.

Each builder turns :class:`ResultsData` into one :class:`Section` (tables,
figures, notes) or ``None`` when it has nothing to say. A section whose input
file is absent says so in one line; a section that breaks on odd data says so
too, instead of costing the reader the rest of the report.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from kossim.report import metrics_meta as mm
from kossim.report.figures import Figure, PlotWriter
from kossim.report.headline import headline_table
from kossim.report.load import ResultsData
from kossim.report.plots_metrics import agent_utilisation_figure, bar_figure, sweep_figures
from kossim.report.plots_time import ecdf_figure, gantt_figure, in_system_figure, seed_spread_figure
from kossim.report.scenario import config_yaml, offered_load_table
from kossim.report.tables import Cell, Table, metric_tables, paired_tables, scope_tables

__all__ = ["Section", "build_sections"]


@dataclass
class Section:
    """A numbered part of the report; ``folded`` tables sit in a collapsed block."""

    id: str
    title: str
    intro: str = ""
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    folded: list[Table] = field(default_factory=list)
    folded_title: str = ""
    code: str = ""
    """A preformatted block (the resolved configuration), shown folded."""
    code_title: str = ""

    def add_figure(self, figure: Figure | None, note: str) -> None:
        """The figure, or (when its input is missing) a one-line note saying why not."""
        if figure is None:
            self.notes.append(note)
        else:
            self.figures.append(figure)


Builder = Callable[[ResultsData, PlotWriter, str], "Section | None"]


def _missing(data: ResultsData, attr: str, what: str) -> str:
    """One-line note for a section whose input is absent."""
    reason = data.notes.get(attr, f"{attr} is absent.")
    return f"{what} skipped: {reason}"


def _load_warnings(data: ResultsData) -> list[str]:
    prefix = len(data.sources) > 1
    return [
        f"⚠ {source.label}: {w}" if prefix else f"⚠ {w}"
        for source in data.sources
        for w in (source.manifest.get("load") or {}).get("warnings") or []
    ]


def _scenario(data: ResultsData, writer: PlotWriter, baseline: str) -> Section | None:
    section = Section(
        "scenario",
        "Scenario as run",
        "Offered load = arrival rate x mean work / service capacity (agents able to serve, "
        "x speed x proficiency x availability under failures); per skill pool where task "
        "types need different skills, and the largest over unions of pools. At or above 1 "
        "queues grow without bound, unless finite buffers (`queue_limit`) or patience shed "
        "the excess (`rejected`, `reneged`). The configuration below is the one simulated, with "
        "`--set` overrides and the sweep.",
    )
    for source in data.sources:
        load = source.manifest.get("load") or {}
        points = load.get("points") or []
        if points:
            section.tables.append(offered_load_table(points, source.label, len(data.sources)))
        config = source.manifest.get("config")
        if isinstance(config, dict) and config:
            section.code += ("" if not section.code else "\n") + config_yaml(config)
    section.code_title = "Resolved configuration"
    if not section.tables and not section.code:
        return None
    return section


def _headline(data: ResultsData, writer: PlotWriter, baseline: str) -> Section:
    section = Section(
        "headline",
        "Headline",
        "Who wins each key metric. A policy wins only where every other policy is "
        "significantly worse (paired t test over seeds, 5 %); otherwise the policies within "
        "noise of the best are named. The last columns give the named policy minus the "
        f"baseline ({baseline}), in percent of the baseline's mean, with the 95 % interval "
        "of the paired difference on the same scale, and its p-value (not adjusted for the "
        "number of rows).",
    )
    section.notes += _load_warnings(data)
    table = headline_table(data, baseline)
    if table is None:
        section.notes.append(_missing(data, "metrics", "Headline"))
    else:
        section.tables.append(table)
    return section


def _expectations(data: ResultsData, writer: PlotWriter, baseline: str) -> Section | None:
    from kossim.analysis.check import RESULTS_FILE, read_results

    checked = [s for s in data.sources if (s.manifest.get("config") or {}).get("expect")]
    if not checked:
        return None
    section = Section(
        "expectations",
        "Expectations",
        "The experiment's `expect:` block, as judged by the last `kossim run` or "
        "`kossim check` of this folder.",
    )
    for source in checked:
        results = read_results(source.path)
        if results is None:
            section.notes.append(
                f"{RESULTS_FILE} is absent from {source.path}: run `kossim check "
                f"{source.path}` to judge the expectations."
            )
            continue
        passed = sum(r.passed for r in results)
        title = f"{passed} of {len(results)} expectations passed"
        table = Table(
            f"{source.label}: {title}" if len(data.sources) > 1 else title,
            ["result", "expectation", "detail"],
            n_labels=3,
        )
        for res in results:
            verdict = Cell("PASS", css="better") if res.passed else Cell("FAIL", css="worse")
            table.rows.append([verdict, Cell(res.expectation), Cell(res.detail)])
        section.tables.append(table)
    return section


def _metrics(data: ResultsData, writer: PlotWriter, baseline: str) -> Section:
    section = Section(
        "metrics",
        "Key metrics",
        "Mean ± 95 % CI half-width over seeds, scope `all`. ★ marks the best policy (per "
        "sweep point) in the metric's direction, only where every other policy is "
        "significantly worse (paired t test over seeds, 5 %); no ★ means the leaders are "
        "within noise, or the metric is neutral.",
    )
    if data.summary is None:
        section.notes.append(_missing(data, "summary", "Metric tables"))
        return section
    section.notes += [w for w in _load_warnings(data) if "still in flight" in w]
    present = mm.order_metrics(data.summary["metric"].unique())
    key = [m for m in mm.KEY_METRICS if m in present]
    other = [m for m in present if m not in key]
    section.tables = metric_tables(data, key)
    section.folded = metric_tables(data, other)
    section.folded_title = f"Other metrics ({len(other)})"
    return section


def _distributions(data: ResultsData, writer: PlotWriter, baseline: str) -> Section:
    section = Section("distributions", "Sojourn distribution and spread over seeds")
    section.add_figure(ecdf_figure(data, writer), _missing(data, "distributions", "Sojourn ECDF"))
    section.add_figure(
        seed_spread_figure(data, writer), _missing(data, "metrics", "Per-seed spread")
    )
    return section


def _bars(data: ResultsData, writer: PlotWriter, baseline: str) -> Section:
    section = Section("bars", "Key metrics at a glance")
    figure = bar_figure(data, writer) if data.summary is not None else None
    section.add_figure(figure, _missing(data, "summary", "Bar charts"))
    return section


def _sweep(data: ResultsData, writer: PlotWriter, baseline: str) -> Section | None:
    if not data.swept:
        return None
    section = Section("sweep", "Metrics against swept parameters")
    if data.summary is None:
        section.notes.append(_missing(data, "summary", "Sweep plots"))
        return section
    section.figures = sweep_figures(data, writer)
    if not section.figures:
        section.notes.append("No swept parameter takes two or more values in the results.")
    return section


def _scopes(data: ResultsData, writer: PlotWriter, baseline: str) -> Section:
    section = Section(
        "scopes",
        "Per priority tier and task type",
        "Mean ± 95 % CI half-width per slice; ★ the best policy of a row where every other "
        "is significantly worse (paired t test, 5 %).",
    )
    if data.summary is None:
        section.notes.append(_missing(data, "summary", "Per-scope tables"))
        return section
    section.tables = scope_tables(data, "priority=", "priority") + scope_tables(
        data, "type=", "type"
    )
    if not section.tables:
        section.notes.append("The results hold no `priority=` or `type=` scopes.")
    return section


def _hops(data: ResultsData, writer: PlotWriter, baseline: str) -> Section | None:
    """The hop distribution of policies whose agents delegate; absent when none does."""
    if data.summary is None:
        return None
    frame = data.summary[data.summary["metric"] == "hops_share"]
    hops = frame["scope"].str.removeprefix("hops=").astype(int)
    moved = set(frame["policy"][(hops > 0) & (frame["mean"] > 0)])
    if not moved:
        return None
    section = Section(
        "hops",
        "Hand-offs per task",
        "Share of measured completed tasks by the number of times agents passed them on "
        "(`hops_share`, mean over seeds), for the policies whose agents delegate.",
    )
    counts = sorted(set(hops))
    head = ["sweep point"] if data.swept else []
    table = Table("", [*head, "policy", *(f"{k} hops" for k in counts)], n_labels=len(head) + 1)
    means = {
        (str(policy), str(point), int(k)): float(mean)
        for policy, point, k, mean in zip(
            frame["policy"], frame["point"], hops, frame["mean"], strict=True
        )
    }
    for point in data.points:
        for policy in (p for p in data.policies if p in moved):
            cells = [Cell(f"{100 * means.get((policy, point, k), 0.0):.1f} %") for k in counts]
            table.rows.append([*([Cell(point)] if data.swept else []), Cell(policy), *cells])
    section.tables = [table]
    return section


def _paired(data: ResultsData, writer: PlotWriter, baseline: str) -> Section:
    section = Section(
        "paired",
        f"Paired differences against {baseline}",
        "Per-seed differences (policy minus baseline), paired by seed and sweep point: mean, 95 % "
        "Student-t interval, paired t-test p-value (* p < 0.05, ** p < 0.01). Verdict applies "
        "the metric's direction; a significant difference under 1 % of the baseline's mean "
        "is negligible.",
    )
    if data.metrics is None:
        section.notes.append(_missing(data, "metrics", "Paired differences"))
        return section
    section.tables = paired_tables(data, baseline)
    if len(data.sources) > 1:
        section.notes.append(
            "Across folders, pairing by seed is meaningful only if the "
            "experiments share the workload (same seeds and scenario)."
        )
    if not section.tables:
        section.notes.append(f"No seed-level rows pair another policy with {baseline}.")
    return section


def _agents(data: ResultsData, writer: PlotWriter, baseline: str) -> Section:
    section = Section("agents", "Utilisation per agent")
    reason = (
        _missing(data, "summary", "Per-agent utilisation")
        if data.summary is None
        else "The results hold no `agent=` scope of `utilization`."
    )
    section.add_figure(agent_utilisation_figure(data, writer), reason)
    return section


def _timeseries(data: ResultsData, writer: PlotWriter, baseline: str) -> Section:
    section = Section("timeseries", "Tasks in system over time")
    section.add_figure(in_system_figure(data, writer), _missing(data, "timeseries", "Time series"))
    return section


def _gantt(data: ResultsData, writer: PlotWriter, baseline: str) -> Section:
    section = Section("gantt", "Gantt chart of a time window")
    reason = (
        "tasks.parquet is absent (run with --trace to record tasks)."
        if data.tasks is None
        else "no started task in the traced runs."
    )
    section.add_figure(gantt_figure(data, writer), f"Gantt chart skipped: {reason}")
    return section


def _execution(data: ResultsData, writer: PlotWriter, baseline: str) -> Section:
    from kossim.report.execution import life_table, timeline_figure

    section = Section("execution", "Execution log")
    if data.events is None:
        section.notes.append(
            "Execution log skipped: events.parquet is absent (run with --trace to record it)."
        )
        return section
    section.intro = (
        "Every message and decision of the traced runs, with its reason, is in "
        "events.parquet; `kossim trace DIR` filters it."
    )
    table = life_table(data)
    if table is not None:
        section.tables.append(table)
    section.add_figure(
        timeline_figure(data, writer),
        "Timeline skipped: no failure or suspicion in the traced runs.",
    )
    return section


BUILDERS: tuple[tuple[str, str, Builder], ...] = (
    ("headline", "Headline", _headline),
    ("expectations", "Expectations", _expectations),
    ("scenario", "Scenario as run", _scenario),
    ("metrics", "Key metrics", _metrics),
    ("distributions", "Sojourn distribution", _distributions),
    ("bars", "Bar charts", _bars),
    ("sweep", "Sweep", _sweep),
    ("scopes", "Per priority and type", _scopes),
    ("hops", "Hand-offs per task", _hops),
    ("paired", "Paired differences", _paired),
    ("agents", "Utilisation per agent", _agents),
    ("timeseries", "Tasks in system", _timeseries),
    ("gantt", "Gantt chart", _gantt),
    ("execution", "Execution log", _execution),
)


READS: dict[str, tuple[str, ...]] = {
    "headline": ("metrics",),
    "metrics": ("summary",),
    "distributions": ("distributions", "metrics"),
    "paired": ("metrics",),
    "timeseries": ("timeseries",),
    "gantt": ("tasks",),
    "execution": ("events",),
}
"""Input tables of each section whose partial absence (some folders only) deserves a note."""


def _partial_notes(data: ResultsData, section_id: str) -> list[str]:
    """Notes on inputs that exist but not everywhere (a compared folder lacks them)."""
    return [
        data.notes[attr]
        for attr in READS.get(section_id, ())
        if getattr(data, attr) is not None and data.notes.get(attr)
    ]


def build_sections(data: ResultsData, writer: PlotWriter, baseline: str) -> list[Section]:
    """All sections in order; a builder that raises becomes a section with a note."""
    sections = []
    for section_id, title, builder in BUILDERS:
        try:
            section = builder(data, writer, baseline)
        except Exception as exc:  # one odd file must not cost the whole report
            last = traceback.format_exception_only(exc)[-1].strip()
            warnings.warn(f"report section {section_id!r} failed: {last}", stacklevel=2)
            section = Section(section_id, title, notes=[f"This section could not be drawn: {last}"])
        if section is not None:
            section.notes += _partial_notes(data, section_id)
            sections.append(section)
    return sections

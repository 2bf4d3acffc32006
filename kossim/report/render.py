"""Public entry points: render one results folder, or compare several.

Rendering is: load the folder, build the sections (tables and figures), and
fill two Jinja templates with the same sections, so ``report.html`` (images
inlined, nothing fetched) and ``report.md`` (images under ``plots/``) always
say the same thing.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from kossim.lab.atomic import atomic_write
from kossim.report.figures import PlotWriter
from kossim.report.fmt import MISSING, fmt_num, fmt_value
from kossim.report.load import ResultsData, Source, load_comparison, load_results, short_names
from kossim.report.sections import Section, build_sections
from kossim.report.tables import Table

__all__ = ["render_comparison", "render_report"]

_TEMPLATES = Path(__file__).with_name("templates")


def render_report(
    results_dir: Path,
    *,
    baseline: str | None = None,
    out_dir: Path | None = None,
    ecdf_axis: str = "auto",
) -> Path:
    """Write ``report.html``, ``report.md`` and ``plots/*.png`` for one results folder.

    ``baseline`` names the policy the others are paired against (default: the
    first policy in file order); ``out_dir`` defaults to the results folder;
    ``ecdf_axis`` is ``auto``, ``linear`` or ``log``. Returns the path of
    ``report.html``.
    """
    data = load_results(Path(results_dir))
    name = str(data.manifest.get("name") or Path(results_dir).resolve().name)
    out = Path(out_dir) if out_dir else Path(results_dir)
    return _render(data, out, baseline, f"kossim report: {name}", ecdf_axis)


def render_comparison(
    results_dirs: list[Path], out_dir: Path, *, baseline: str | None = None, ecdf_axis: str = "auto"
) -> Path:
    """One report across several results folders; policies are labelled ``<folder>/<policy>``.

    The default baseline is the first policy of the first folder. Returns the
    path of ``report.html`` in ``out_dir``.
    """
    if not results_dirs:
        raise ValueError("render_comparison needs at least one results folder (got none)")
    data = load_comparison([Path(d) for d in results_dirs])
    title = "kossim comparison: " + " vs ".join(s.label for s in data.sources)
    return _render(data, Path(out_dir), baseline, title, ecdf_axis)


def _resolve_baseline(data: ResultsData, baseline: str | None) -> str:
    """The baseline label; an unprefixed name is accepted if it matches exactly one label."""
    if not data.policies:
        return ""
    if baseline is None:
        return data.policies[0]
    if baseline in data.policies:
        return baseline
    suffixed = [p for p in data.policies if p.endswith(f"/{baseline}")]
    if len(suffixed) == 1:
        return suffixed[0]
    hint = difflib.get_close_matches(baseline, data.policies, n=1)
    did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ValueError(
        f"unknown baseline policy {baseline!r} (policies: {', '.join(data.policies)}){did_you_mean}"
    )


def _render(
    data: ResultsData, out_dir: Path, baseline: str | None, title: str, ecdf_axis: str = "auto"
) -> Path:
    base = _resolve_baseline(data, baseline)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = PlotWriter(out_dir / "plots", ecdf_axis)
    sections = build_sections(data, writer, base)
    _remove_stale_plots(out_dir / "plots", sections)
    # The headline answers the question, so it opens the report, above the provenance.
    headline = next((sec for sec in sections if sec.id == "headline"), None)
    context = {
        "title": title,
        "sources": [_source_facts(s, data) for s in data.sources],
        "failed": data.failed,
        "n_runs": sum(_run_count(s.manifest) for s in data.sources),
        "policies": data.policies,
        "baseline": base,
        "headline": headline,
        "sections": [sec for sec in sections if sec is not headline],
        "manifest_note": data.notes.get("manifest", ""),
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["mdcell"] = _md_cell
    env.filters["md_table"] = _md_table
    env.filters["inline_code"] = _inline_code
    _write_atomic(out_dir / "report.md", env.get_template("report.md").render(**context))
    html_path = out_dir / "report.html"
    _write_atomic(html_path, env.get_template("report.html").render(**context))
    return html_path


def _remove_stale_plots(plots_dir: Path, sections: list[Section]) -> None:
    """Drop figures a previous report left behind, so ``plots/`` matches this report."""
    current = {f.rel_path.removeprefix("plots/") for s in sections for f in s.figures}
    stems = {Path(name).stem for name in current}
    for plot in [*plots_dir.glob("*.png"), *plots_dir.glob("*.svg")]:
        if plot.stem not in stems:
            plot.unlink()


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file so a reader never sees half a report."""
    atomic_write(path, text.encode("utf-8"))


def _md_cell(text: Any) -> str:
    """Markdown table cells cannot hold pipes or line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> str:
    """A pipe table: label columns left-aligned, numbers right-aligned, best cells bold + star."""
    align = [":---" if i < table.n_labels else "---:" for i in range(len(table.columns))]
    lines = [table.columns, align] + [
        [f"**{c.text} ★**" if c.best else c.text for c in row] for row in table.rows
    ]
    return "\n".join("| " + " | ".join(_md_cell(cell) for cell in line) + " |" for line in lines)


def _inline_code(text: Any) -> markupsafe.Markup:
    """Escape ``text`` for HTML and show its `backticked` spans as code, as Markdown would."""
    escaped = str(markupsafe.escape(text))
    return markupsafe.Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped))


def _run_count(manifest: dict[str, Any]) -> int:
    runs = manifest.get("n_runs")
    return int(runs) if isinstance(runs, int) else len(manifest.get("runs") or [])


def _seeds_text(seeds: Any) -> str:
    if isinstance(seeds, list):
        shown = ", ".join(str(s) for s in seeds[:10])
        return f"{len(seeds)}: {shown}" + (", …" if len(seeds) > 10 else "")
    return MISSING if seeds is None else str(seeds)


def _duration(seconds: Any) -> str:
    """Wall time as ``12.3 s`` or ``1 h 02 min``."""
    if not isinstance(seconds, int | float):
        return MISSING
    if seconds < 120:
        return f"{fmt_num(seconds)} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _warmup_text(manifest: dict[str, Any]) -> str:
    """The warm-up as set; for ``auto``, the cuts MSER-5 chose over the runs."""
    warmup = manifest.get("warmup", MISSING)
    if warmup != "auto":
        return str(warmup)
    cuts = sorted(
        float(r["warmup"])
        for r in manifest.get("runs") or []
        if isinstance(r, dict) and isinstance(r.get("warmup"), int | float)
    )
    if not cuts:
        return "auto (MSER-5 per run)"
    none = sum(c == 0 for c in cuts)
    spread = (
        f"{fmt_num(cuts[0])} to {fmt_num(cuts[-1])}" if cuts[0] != cuts[-1] else fmt_num(cuts[0])
    )
    return (
        f"auto (MSER-5 per run): cut at {spread}, median {fmt_num(cuts[len(cuts) // 2])}; "
        f"no cut in {none} of {len(cuts)} runs"
    )


def _source_facts(source: Source, data: ResultsData) -> dict[str, Any]:
    """Header of one folder: name, description and a list of (label, value) facts."""
    m = source.manifest
    executor = str(m.get("executor") or MISSING) + (f" ({m['jobs']} jobs)" if m.get("jobs") else "")
    sweep = m.get("sweep")
    swept: dict[str, Any] = sweep if isinstance(sweep, dict) else {}
    names = short_names(list(swept))
    sweep_text = (
        "; ".join(f"{names[p]}: {', '.join(map(fmt_value, v))}" for p, v in swept.items()) or "none"
    )
    n_failed = m.get(
        "n_failed", sum(1 for r in m.get("runs") or [] if r.get("status", "ok") != "ok")
    )
    facts = [
        ("folder", str(source.path)),
        ("kossim version", m.get("kossim_version", MISSING)),
        ("git commit", m.get("git_commit") or MISSING),
        ("seeds", _seeds_text(m.get("seeds"))),
        ("runs", f"{_run_count(m)} ({n_failed} failed)"),
        ("wall time", _duration(m.get("wall_time"))),
        ("executor", executor),
        ("horizon / warm-up", f"{m.get('horizon', MISSING)} / {_warmup_text(m)}"),
        ("sweep", sweep_text),
        ("--set overrides", " ".join(m.get("overrides") or []) or "none"),
        ("created", m.get("created", MISSING)),
    ]
    return {
        "label": source.label,
        "name": m.get("name") or source.label,
        "description": m.get("description") or "",
        "facts": [(k, str(v)) for k, v in facts],
    }

"""The ``kossim`` command line: run, validate, policies, report, compare, check, bench, schema.

Exit codes: 0 success; 1 some runs failed or an expectation broke; 2 invalid
input or usage (file, line, field and what is allowed are printed, never a
Python traceback); 130 interrupted by SIGINT, 143 by SIGTERM (what finished
is kept: rerun with ``--resume``).

Help is plain text with explicit metavars (``--out DIR``, ``--set
PATH=VALUE``), so it reads the same in a terminal, a pipe and a CI log.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import kossim
from kossim.console import plural
from kossim.errors import KossimInputError
from kossim.lab.folders import read_manifest

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="kossim: simulate contending orchestration policies on the same random workload.",
)
# soft_wrap: a file:line:col problem stays on one line, as editors and CI parse it.
# emoji off: user text such as ":x:" prints as written (markup in it is escaped where shown).
out = Console(soft_wrap=True, emoji=False)
err = Console(stderr=True, soft_wrap=True, emoji=False)


class ExecutorKind(StrEnum):
    serial = "serial"
    local = "local"
    dask = "dask"


class EcdfAxis(StrEnum):
    auto = "auto"
    linear = "linear"
    log = "log"


SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="PATH=VALUE",
        help="Override a value (repeatable): --set scenario.workload.arrivals.rate=7.5",
    ),
]
ExpArg = Annotated[Path, typer.Argument(metavar="EXPERIMENT", help="Experiment YAML file.")]
OutOpt = Annotated[Path | None, typer.Option("--out", metavar="DIR", help="Results folder.")]
JobsOpt = Annotated[
    int | None, typer.Option(metavar="N", min=1, help="Parallel runs (default: cores).")
]
ExecutorOpt = Annotated[ExecutorKind, typer.Option(metavar="KIND", help="serial, local or dask.")]
ProgressOpt = Annotated[
    bool, typer.Option(metavar="", help="Progress on stderr (a bar, or lines in a log).")
]


def _version(value: bool) -> None:
    if value:
        out.print(f"kossim {kossim.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """kossim: simulate contending orchestration policies on the same random workload."""


@contextmanager
def _stoppable() -> Iterator[None]:
    """SIGINT and SIGTERM stop the command: finished runs are kept, and the exit code
    is 130 or 143 (see :mod:`kossim.lab.interrupt`)."""
    from kossim.lab.interrupt import exit_code, stop_on_signals

    with stop_on_signals():
        try:
            yield
        except KeyboardInterrupt as exc:
            detail = str(exc) if str(exc).startswith("interrupted:") else ""
            err.print(
                detail or "interrupted: finished runs are kept; rerun with --resume",
                style="yellow",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(exit_code(exc)) from None


def _fail_input(exc: KossimInputError) -> None:
    err.print(
        f"[bold red]error:[/] invalid input ({plural(len(exc.problems), 'problem')})",
        highlight=False,
    )
    for problem in exc.problems:
        err.print(str(problem), markup=False, highlight=False)
    raise typer.Exit(2)


@app.command()
def run(
    experiment: ExpArg,
    out_dir: OutOpt = None,
    jobs: JobsOpt = None,
    executor: ExecutorOpt = ExecutorKind.local,
    address: Annotated[
        str | None, typer.Option(metavar="URL", help="Dask scheduler, e.g. tcp://host:8786.")
    ] = None,
    resume: Annotated[
        bool, typer.Option(metavar="", help="Skip runs already in the folder.")
    ] = False,
    trace: Annotated[bool, typer.Option(metavar="", help="Also write tasks.parquet.")] = False,
    seeds: Annotated[
        int | None, typer.Option(metavar="N", min=1, help="Run seeds 0 .. N-1 instead.")
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            metavar="METRIC:REL",
            help="Add seeds until METRIC[@SCOPE]:REL holds: 95 % half-width <= REL x mean "
            "for every policy and point (e.g. sojourn_mean:0.05).",
        ),
    ] = None,
    max_seeds: Annotated[
        int, typer.Option(metavar="N", min=1, help="Cap on seeds for --precision.")
    ] = 100,
    report: Annotated[bool, typer.Option(metavar="", help="Render the report afterwards.")] = True,
    progress: ProgressOpt = True,
    set_: SetOpt = None,
) -> None:
    """Simulate every policy x sweep point x seed and write results, summary and report."""
    from kossim.lab.tables import pyarrow_without_pandas

    # pandas is loaded for the report only
    with _stoppable(), ExitStack() as held, pyarrow_without_pandas():
        outcome = _run(
            experiment,
            out_dir,
            jobs,
            executor,
            address,
            resume,
            trace,
            seeds,
            progress,
            set_,
            precision,
            max_seeds,
            held,
        )
        if outcome.plan.experiment.expect:
            from kossim.analysis.check import check_folder

            check_folder(outcome.out_dir, outcome.plan.experiment.expect, experiment.parent)
        report_path = _render(outcome.out_dir) if report else None
        _print_load(outcome.out_dir)
        from kossim.lab.precision import shortfall

        short = shortfall(json.loads((outcome.out_dir / "manifest.json").read_text()))
        if short:
            err.print(f"error: {short}", style="bold red", markup=False, highlight=False)
        _print_results(outcome.out_dir, report_path, fail=bool(short))


def _run(
    experiment: Path,
    out_dir: Path | None,
    jobs: int | None,
    executor: ExecutorKind,
    address: str | None,
    resume: bool,
    trace: bool,
    seeds: int | None,
    progress: bool,
    set_: list[str] | None,
    precision: str | None = None,
    max_seeds: int = 100,
    held: ExitStack | None = None,
) -> Any:
    """Run the sweep; the results folder stays locked until ``held`` closes (the command
    renders into it afterwards), or until the sweep ends without one."""
    from kossim.config.experiment import load_experiment
    from kossim.lab import run_experiment
    from kossim.lab.executors import make_executor
    from kossim.lab.folder_lock import lock_folder
    from kossim.lab.plan import make_plan
    from kossim.lab.precision import parse_target, run_to_precision

    try:
        loaded = load_experiment(experiment, set_ or [])
        target = parse_target(precision, max_seeds) if precision is not None else None
        if held is not None:  # lock only input that can run: invalid input leaves no folder
            make_plan(loaded)
            make_executor(executor.value, jobs, address)
            out_dir = out_dir or Path("results") / loaded.experiment.name
            held.enter_context(lock_folder(out_dir))
        options: dict[str, Any] = dict(
            executor=executor.value,
            jobs=jobs,
            address=address,
            trace=trace,
            progress=progress,
            resume=resume,
        )
        if target is not None:
            outcome = run_to_precision(loaded, target, run_experiment, out_dir=out_dir, **options)
        else:
            seed_list = list(range(seeds)) if seeds is not None else None
            outcome = run_experiment(loaded, out_dir, seeds=seed_list, **options)
    except KossimInputError as exc:
        _fail_input(exc)
    err.print(
        f"{outcome.n_ok} ok, {outcome.n_failed} failed, {outcome.n_skipped} resumed "
        f"in {outcome.wall_time:.1f} s -> {outcome.out_dir}",
        markup=False,
        highlight=False,
    )
    return outcome


def _render(folder: Path, baseline: str | None = None, ecdf_axis: str = "auto") -> Path:
    from kossim.lab.tables import pandas_for_pyarrow
    from kossim.report import render_report

    pandas_for_pyarrow()
    return render_report(folder, baseline=baseline, ecdf_axis=ecdf_axis)


def _print_results(folder: Path, report_path: Path | None, fail: bool = False) -> None:
    """The summary table, a line per failed run, then where the report is; exit 1 on
    failed runs (or when ``fail``)."""
    from kossim.console import failure_lines, read_summary, summary_table

    manifest = json.loads((folder / "manifest.json").read_text())
    out.print(summary_table(folder.name, read_summary(folder / "summary.csv"), manifest))
    for line in failure_lines(manifest):
        err.print(line, style="red", markup=False, highlight=False)
    if report_path is not None:
        err.print(f"report: {report_path}", highlight=False)
    n_failed = int(manifest.get("n_failed", 0))
    if n_failed:
        err.print(
            f"{plural(n_failed, 'run')} failed: tracebacks in {folder / 'manifest.json'}"
            + (" and the report" if report_path is not None else ""),
            style="bold red",
            markup=False,
            highlight=False,
        )
    if n_failed or fail:
        raise typer.Exit(1)


def _print_load(folder: Path | None, load: dict[str, Any] | None = None) -> None:
    """Offered load per sweep point, then the overload warnings (of the manifest)."""
    if load is None:
        assert folder is not None
        load = json.loads((folder / "manifest.json").read_text()).get("load") or {}
    points = load.get("points") or []
    if points:
        text = ", ".join(
            f"{p['label']}: {p['offered_load']:.2f}" if p["label"] else f"{p['offered_load']:.2f}"
            for p in points
        )
        out.print(f"offered load: {text}", highlight=False)
    for warning in load.get("warnings") or []:
        err.print(f"[bold yellow]warning:[/] {warning}", highlight=False)


@app.command()
def validate(
    experiment: ExpArg,
    set_: SetOpt = None,
    conformance: Annotated[
        bool,
        typer.Option(
            metavar="",
            help="Also run the conformance check on the user components the file names "
            "(module:Class or plugins); exit 1 if one fails.",
        ),
    ] = False,
) -> None:
    """Check an experiment file (and every sweep point) without running it."""
    from kossim.config.experiment import load_experiment
    from kossim.lab.plan import make_plan

    try:
        plan = make_plan(load_experiment(experiment, set_ or []))
    except KossimInputError as exc:
        _fail_input(exc)
    exp = plan.experiment
    out.print(
        f"{experiment}: valid. {plural(len(exp.policies), 'policy', 'policies')} x "
        f"{plural(len(plan.points), 'point')} x {plural(len(plan.seeds), 'seed')} = "
        f"{plural(len(plan.specs), 'run')}; expectations: {len(exp.expect)}",
        markup=False,
        highlight=False,
    )
    from kossim.analysis.overload import overload_warnings, point_loads

    points = point_loads(plan)
    _print_load(None, {"points": points, "warnings": overload_warnings(points)})
    if conformance:
        _conformance(plan.experiment)


def _conformance(exp: Any) -> None:
    """The conformance check of every component the policies name that kossim does not
    ship (built-ins are checked by kossim's own tests)."""
    from kossim.conformance import check
    from kossim.registry import registered_kinds, resolve

    seen: set[str] = set()
    failed = 0
    for policy in exp.policies:
        for kind in registered_kinds():
            ref = getattr(policy, kind, None)
            if ref is None:
                continue
            cls = resolve(kind, ref).cls
            key = f"{kind}:{ref!r}"
            if cls.__module__.partition(".")[0] in ("kossim", "policies") or key in seen:
                continue
            seen.add(key)
            problems = check(kind, ref)
            failed += bool(problems)
            verdict = "conforms" if not problems else f"{plural(len(problems), 'problem')}"
            out.print(f"{kind} {cls.id!r}: {verdict}", markup=False, highlight=False)
            for problem in problems:
                err.print(f"  {problem}", markup=False, highlight=False)
    if not seen:
        out.print("conformance: no user component to check", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def policies() -> None:
    """List every registered policy component with its parameters."""
    from kossim.registry import available, registered_kinds

    table = Table(title="policy components")
    for col in ("kind", "id", "description", "parameters"):
        table.add_column(col)
    for kind in registered_kinds():  # the built-in kinds, then newer ones (retry, ...)
        for ident, cls in sorted(available(kind).items()):
            params = (
                ", ".join(
                    f"{n} (required)"
                    if f.is_required()
                    else f"{n}={f.get_default(call_default_factory=True)!r}"
                    for n, f in cls.Params.model_fields.items()
                )
                or "-"
            )
            table.add_row(kind, ident, cls.description, params)
    out.print(table)


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Results folder.")],
    baseline: Annotated[
        str | None, typer.Option(metavar="POLICY", help="Policy to compare against.")
    ] = None,
    ecdf_axis: Annotated[
        EcdfAxis,
        typer.Option(metavar="AXIS", help="x axis of sojourn ECDFs (auto: log when spread wide)."),
    ] = EcdfAxis.auto,
) -> None:
    """Re-render report.html / report.md / plots from a results folder alone."""
    try:
        read_manifest(folder)
    except KossimInputError as exc:
        _fail_input(exc)
    if baseline is not None:
        _check_baseline(folder, baseline)
    err.print(
        f"report: {_render(folder, baseline, ecdf_axis.value)}", markup=False, highlight=False
    )


def _check_baseline(folder: Path, baseline: str) -> None:
    """``--baseline`` must name a policy of the folder (exit 2 with the choices)."""
    import difflib

    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        names = [p.get("name") if isinstance(p, dict) else p for p in manifest["policies"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # the report says what is wrong with the folder itself
    if baseline in names:
        return
    close = difflib.get_close_matches(baseline, [str(n) for n in names], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    err.print(
        f"error: --baseline: no policy {baseline!r} in {folder}; "
        f"policies: {', '.join(map(str, names))}{hint}",
        markup=False,
        highlight=False,
    )
    raise typer.Exit(2)


@app.command()
def compare(
    folders: Annotated[
        list[Path], typer.Argument(metavar="DIR...", help="Two or more results folders.")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Where to write the report.")
    ] = Path("results/compare"),
) -> None:
    """One report across result folders (e.g. before and after a policy change)."""
    from kossim.report import render_comparison

    if len(folders) < 2:
        raise typer.BadParameter(
            f"compare needs two or more results folders (got {len(folders)}); "
            "for one folder use: kossim report DIR",
            param_hint="DIR...",
        )
    try:
        for f in folders:
            read_manifest(f)
    except KossimInputError as exc:
        _fail_input(exc)
    err.print(f"report: {render_comparison(folders, out_dir)}", markup=False, highlight=False)


@app.command()
def check(
    target: Annotated[
        Path,
        typer.Argument(
            metavar="EXPERIMENT|DIR", help="Experiment YAML (runs it) or results folder."
        ),
    ],
    out_dir: OutOpt = None,
    jobs: JobsOpt = None,
    executor: ExecutorOpt = ExecutorKind.local,
    resume: Annotated[bool, typer.Option(metavar="", help="Skip runs already done.")] = False,
    progress: ProgressOpt = True,
    report: Annotated[
        bool, typer.Option(metavar="", help="Write the report, with the expectations table.")
    ] = True,
    junit: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Also write the verdicts as JUnit XML here."),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", metavar="FILE", help="Also write the verdicts as JSON here."),
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Evaluate the experiment's expect: block; exit 1 if any expectation fails."""
    from kossim.analysis.check import check_folder, junit_xml, results_json, results_table

    if target.is_dir():
        try:
            folder, expectations, base = _stored_expectations(target)
        except KossimInputError as exc:
            _fail_input(exc)
    else:
        with _stoppable(), ExitStack() as held:
            outcome = _run(
                target,
                out_dir,
                jobs,
                executor,
                None,
                resume,
                False,
                None,
                progress,
                set_,
                held=held,
            )
        folder = outcome.out_dir
        expectations, base = outcome.plan.experiment.expect, target.parent
    if not expectations:
        err.print("error: the experiment has no expect: block")
        raise typer.Exit(2)
    try:
        results = check_folder(folder, expectations, base)
    except KossimInputError as exc:
        _fail_input(exc)
    if report:
        err.print(f"report: {_render(folder)}", markup=False, highlight=False)
    _print_load(folder)
    out.print(results_table(results))
    passed = sum(r.passed for r in results)
    out.print(f"{passed} of {plural(len(results), 'expectation')} passed", highlight=False)
    for path, data in (
        (junit, lambda: junit_xml(results, folder.name)),
        (json_out, lambda: results_json(results, folder.name).encode()),
    ):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data())
            err.print(f"verdicts: {path}", highlight=False)
    if passed < len(results):
        raise typer.Exit(1)


def _stored_expectations(folder: Path) -> tuple[Path, list[Any], Path]:
    from kossim.config.experiment import validate_data
    from kossim.config.loader import SourceMap

    manifest = read_manifest(folder)
    where = str(folder / "manifest.json")
    exp = validate_data(manifest["config"], SourceMap(where), where)
    base = Path(manifest.get("experiment_dir") or folder)
    return folder, list(exp.expect), base


@app.command()
def bench(
    tasks: Annotated[
        int, typer.Option(metavar="N", min=1, help="Measured tasks of the M/M/c run.")
    ] = 200_000,
    quick: Annotated[bool, typer.Option(metavar="", help="Small sizes (a smoke run).")] = False,
    repeat: Annotated[
        int, typer.Option(metavar="N", min=1, help="Timings per figure (best is kept).")
    ] = 3,
    sweep: Annotated[
        bool,
        typer.Option(
            metavar="",
            help="Measure per-run dispatch overhead, and sweeps of 1,000 short runs against "
            "their simulation time per executor.",
        ),
    ] = False,
    scale: Annotated[
        bool,
        typer.Option(
            metavar="",
            help="CPU us per task and peak RSS of every routing and dispatch component (and "
            "the SimPy model) at 10 ... 10,000 agents, plain, with failures and with latency; "
            "us per task and peak RSS at 50k ... 1M tasks; sweep overhead per run per executor.",
        ),
    ] = False,
    long: Annotated[
        bool, typer.Option(metavar="", help="With --scale: a 10-million-task run too.")
    ] = False,
) -> None:
    """Cost per task of kossim vs a hand-written SimPy model of the same M/M/c system."""
    if scale:
        from kossim.bench.scale import scale_bench

        scale_bench(quick=quick, repeat=repeat, long=long)
        return
    if sweep:
        from kossim.bench.sweep import print_sweep_bench, run_sweep_bench
        from kossim.bench.sweep_store import print_store_bench, run_store_bench

        print_sweep_bench(run_sweep_bench(quick=quick, repeat=repeat))
        executors = ("serial", "local") if quick else ("serial", "local", "dask")
        print_store_bench(run_store_bench(100 if quick else 1000, repeat, executors))
        return
    from kossim.bench import print_bench, run_bench

    print_bench(run_bench(tasks=tasks, quick=quick, repeat=repeat))


@app.command()
def trace(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Results folder of a --trace run.")],
    policy: Annotated[str | None, typer.Option(metavar="POLICY", help="Only this policy.")] = None,
    seed: Annotated[int | None, typer.Option(metavar="N", help="Only this seed.")] = None,
    task: Annotated[int | None, typer.Option(metavar="ID", help="Only this task.")] = None,
    agent: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only rows naming this actor.")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KIND",
            help="Only these kinds (repeatable): route, start, suspect, send, send:task, ...",
        ),
    ] = None,
    start: Annotated[float | None, typer.Option("--from", metavar="T", help="From time T.")] = None,
    end: Annotated[float | None, typer.Option("--to", metavar="T", help="Up to time T.")] = None,
    limit: Annotated[int, typer.Option(metavar="N", min=1, help="Rows printed at most.")] = 200,
) -> None:
    """Print the execution log of a traced run, filtered: every message and decision with
    its reason."""
    from kossim.trace import EventFilter, read_events

    try:
        read_manifest(folder)
        how = EventFilter(policy, seed, task, agent, tuple(kind or ()), start, end)
        rows = read_events(folder, how)
    except KossimInputError as exc:
        _fail_input(exc)
    from kossim.sim.eventlog import EVENT_COLUMNS

    # the run a row belongs to, where the rows shown come from more than one
    keys = [c for c in rows.columns if c not in EVENT_COLUMNS and rows[c].nunique() > 1]
    for row in rows.head(limit).to_dict("records"):
        where = " ".join(f"{k.rpartition('.')[2]}={row[k]}" for k in keys)
        task_text = f" task {row['task']}" if row["task"] >= 0 else ""
        out.print(
            f"{row['time']:>10.4f} {where + ' ' if where else ''}{row['kind']:<14} "
            f"{row['actor']}{task_text}: {row['reason']}",
            markup=False,
            highlight=False,
        )
    shown = min(limit, len(rows))
    err.print(
        f"{shown} of {plural(len(rows), 'event')} shown"
        + ("" if shown == len(rows) else f" (raise --limit to see more than {limit})"),
        highlight=False,
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of experiment files (for editor completion)."""
    from kossim.config.models import Experiment

    out.print_json(json.dumps(Experiment.model_json_schema()))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KossimInputError as exc:  # raised outside a command's own handling
        for problem in exc.problems:
            err.print(str(problem), markup=False, highlight=False)
        sys.exit(2)

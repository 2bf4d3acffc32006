"""The ``kossim`` command line: run, validate, policies, report, compare, check, bench, schema.

Exit codes: 0 success; 1 some runs failed or an expectation broke; 2 invalid
input (file, line, field and what is allowed are printed, never a Python
traceback); 130 interrupted (what finished is kept: rerun with ``--resume``).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kossim.errors import KossimInputError

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="kossim: simulate contending orchestration policies on the same random workload.",
)
# soft_wrap: a file:line:col problem stays on one line, as editors and CI parse it.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class ExecutorKind(StrEnum):
    serial = "serial"
    local = "local"
    dask = "dask"


SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a value: --set scenario.workload.arrivals.rate=7.5"),
]
ExpArg = Annotated[Path, typer.Argument(help="Experiment YAML file.")]


def _fail_input(exc: KossimInputError) -> None:
    err.print(
        f"[bold red]error:[/] invalid input ({len(exc.problems)} problem(s))", highlight=False
    )
    for problem in exc.problems:
        err.print(str(problem), markup=False, highlight=False)
    raise typer.Exit(2)


@app.command()
def run(
    experiment: ExpArg,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Results folder.")] = None,
    jobs: Annotated[int | None, typer.Option(help="Parallel runs (default: cores).")] = None,
    executor: Annotated[ExecutorKind, typer.Option(help="Where runs execute.")] = (
        ExecutorKind.local
    ),
    address: Annotated[
        str | None, typer.Option(help="Dask scheduler, e.g. tcp://host:8786.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Skip runs already in the folder.")] = False,
    trace: Annotated[bool, typer.Option(help="Also write tasks.parquet.")] = False,
    seeds: Annotated[int | None, typer.Option(help="Override the number of seeds.")] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="Add seeds until METRIC[@SCOPE]:REL holds: 95 % half-width <= REL x mean "
            "for every policy and point (e.g. sojourn_mean:0.05)."
        ),
    ] = None,
    max_seeds: Annotated[int, typer.Option(help="Cap on seeds for --precision.")] = 100,
    report: Annotated[bool, typer.Option(help="Render the report afterwards.")] = True,
    progress: Annotated[bool, typer.Option(help="Progress bar on stderr.")] = True,
    set_: SetOpt = None,
) -> None:
    """Simulate every policy x sweep point x seed and write results, summary and report."""
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
    )
    if report:
        _render(outcome.out_dir)
    _print_headline(outcome.out_dir)
    n_failed = json.loads((outcome.out_dir / "manifest.json").read_text()).get("n_failed", 0)
    if n_failed:
        err.print(
            f"[bold red]{n_failed} run(s) failed[/]: tracebacks in "
            f"{outcome.out_dir / 'manifest.json'} and the report"
        )
        raise typer.Exit(1)


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
) -> Any:
    from kossim.config.experiment import load_experiment
    from kossim.lab import run_experiment
    from kossim.precision import parse_target, run_to_precision

    try:
        loaded = load_experiment(experiment, set_ or [])
        options: dict[str, Any] = dict(
            executor=executor.value,
            jobs=jobs,
            address=address,
            trace=trace,
            progress=progress,
            resume=resume,
        )
        if precision is not None:
            target = parse_target(precision, max_seeds)
            outcome = run_to_precision(loaded, target, run_experiment, out_dir=out_dir, **options)
        else:
            seed_list = list(range(seeds)) if seeds is not None else None
            outcome = run_experiment(loaded, out_dir, seeds=seed_list, **options)
    except KossimInputError as exc:
        _fail_input(exc)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: finished runs are kept; rerun with --resume")
        raise typer.Exit(130) from None
    err.print(
        f"{outcome.n_ok} ok, {outcome.n_failed} failed, {outcome.n_skipped} resumed "
        f"in {outcome.wall_time:.1f} s -> {outcome.out_dir}",
        highlight=False,
    )
    return outcome


def _render(folder: Path, baseline: str | None = None) -> Path:
    from kossim.report import render_report

    path = render_report(folder, baseline=baseline)
    err.print(f"report: {path}", highlight=False)
    return path


def _print_headline(folder: Path) -> None:
    """Sojourn and throughput per policy at each point, with 95 % CIs."""
    import pandas as pd

    summary = pd.read_csv(folder / "summary.csv")
    rows = summary[
        (summary["scope"] == "all")
        & summary["metric"].isin(["sojourn_mean", "wait_mean", "throughput", "utilization"])
    ]
    extra = [
        c
        for c in summary.columns
        if c not in ("policy", "metric", "scope", "mean", "std", "ci_low", "ci_high", "n")
    ]
    table = Table(title=f"{folder.name}: mean [95 % CI] over seeds")
    for col in ["policy", *extra, "metric", "mean", "95 % CI", "n"]:
        table.add_column(col)
    for d in rows.to_dict("records"):
        table.add_row(
            str(d["policy"]),
            *[str(d[c]) for c in extra],
            str(d["metric"]),
            f"{d['mean']:.4g}",
            f"[{d['ci_low']:.4g}, {d['ci_high']:.4g}]",
            str(d["n"]),
        )
    out.print(table)


@app.command()
def validate(experiment: ExpArg, set_: SetOpt = None) -> None:
    """Check an experiment file (and every sweep point) without running it."""
    from kossim.config.experiment import load_experiment
    from kossim.plan import make_plan

    try:
        plan = make_plan(load_experiment(experiment, set_ or []))
    except KossimInputError as exc:
        _fail_input(exc)
    exp = plan.experiment
    out.print(
        f"{experiment}: valid. {len(exp.policies)} policies x {len(plan.points)} points x "
        f"{len(plan.seeds)} seeds = {len(plan.specs)} runs; expectations: {len(exp.expect)}",
        highlight=False,
    )


@app.command()
def policies() -> None:
    """List every registered policy component with its parameters."""
    from kossim.registry import KINDS, available

    table = Table(title="policy components")
    for col in ("kind", "id", "description", "parameters"):
        table.add_column(col)
    for kind in KINDS:
        for ident, cls in sorted(available(kind).items()):
            params = (
                ", ".join(
                    f"{n} (required)" if f.is_required() else f"{n}={f.default!r}"
                    for n, f in cls.Params.model_fields.items()
                )
                or "-"
            )
            table.add_row(kind, ident, cls.description, params)
    out.print(table)


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(help="Results folder.")],
    baseline: Annotated[str | None, typer.Option(help="Policy to compare against.")] = None,
) -> None:
    """Re-render report.html / report.md / plots from a results folder alone."""
    if not (folder / "manifest.json").is_file():
        err.print(f"error: {folder} is not a kossim results folder (no manifest.json)")
        raise typer.Exit(2)
    _render(folder, baseline)


@app.command()
def compare(
    folders: Annotated[list[Path], typer.Argument(help="Two or more results folders.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the report.")] = Path(
        "results/compare"
    ),
) -> None:
    """One report across result folders (e.g. before and after a policy change)."""
    from kossim.report import render_comparison

    for f in folders:
        if not (f / "manifest.json").is_file():
            err.print(f"error: {f} is not a kossim results folder (no manifest.json)")
            raise typer.Exit(2)
    err.print(f"report: {render_comparison(folders, out_dir)}", highlight=False)


@app.command()
def check(
    target: Annotated[Path, typer.Argument(help="Experiment YAML (runs it) or results folder.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Results folder.")] = None,
    jobs: Annotated[int | None, typer.Option(help="Parallel runs.")] = None,
    executor: Annotated[ExecutorKind, typer.Option()] = ExecutorKind.local,
    resume: Annotated[bool, typer.Option(help="Skip runs already done.")] = False,
    progress: Annotated[bool, typer.Option(help="Progress bar on stderr.")] = True,
    set_: SetOpt = None,
) -> None:
    """Evaluate the experiment's expect: block; exit 1 if any expectation fails."""
    import pandas as pd

    from kossim.check import evaluate, results_table

    if target.is_dir():
        folder, expectations, base = _stored_expectations(target)
    else:
        outcome = _run(target, out_dir, jobs, executor, None, resume, False, None, progress, set_)
        folder = outcome.out_dir
        expectations, base = outcome.plan.experiment.expect, target.parent
    if not expectations:
        err.print("error: the experiment has no expect: block")
        raise typer.Exit(2)
    results = evaluate(
        expectations,
        pd.read_parquet(folder / "metrics.parquet"),
        pd.read_csv(folder / "summary.csv"),
        base_dir=base,
    )
    out.print(results_table(results))
    passed = sum(r.passed for r in results)
    out.print(f"{passed} of {len(results)} expectations passed", highlight=False)
    if passed < len(results):
        raise typer.Exit(1)


def _stored_expectations(folder: Path) -> tuple[Path, list[Any], Path]:
    from kossim.config.models import Experiment

    manifest = json.loads((folder / "manifest.json").read_text())
    exp = Experiment.model_validate(manifest["config"])
    base = Path(manifest.get("experiment_dir") or folder)
    return folder, list(exp.expect), base


@app.command()
def bench(
    tasks: Annotated[int, typer.Option(help="Measured tasks of the M/M/c run.")] = 200_000,
    quick: Annotated[bool, typer.Option(help="Small sizes (a smoke run).")] = False,
    repeat: Annotated[int, typer.Option(help="Timings per figure (best is kept).")] = 3,
    sweep: Annotated[bool, typer.Option(help="Measure per-run dispatch overhead.")] = False,
) -> None:
    """Cost per task of kossim vs a hand-written SimPy model of the same M/M/c system."""
    if sweep:
        from kossim.bench_sweep import print_sweep_bench, run_sweep_bench

        print_sweep_bench(run_sweep_bench(quick=quick, repeat=repeat))
        return
    from kossim.bench import print_bench, run_bench

    print_bench(run_bench(tasks=tasks, quick=quick, repeat=repeat))


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

"""Running a whole experiment: plan, execute, store each run as it lands, aggregate.

This is what ``kossim run`` does. Each finished run is stored the moment its
result is back, so Ctrl-C or ``kill -9`` loses only runs in flight (a power
loss also the runs stored since the last batched sync, :mod:`kossim.lab.durable`), and
``resume=True`` runs only what is not yet complete (failed runs included).
Progress goes to stderr so stdout stays clean for tables and pipes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from kossim.analysis.overload import assess as assess_load
from kossim.config.experiment import LoadedExperiment
from kossim.console import plural
from kossim.lab.executors import Executor, make_executor
from kossim.lab.folder_lock import lock_folder
from kossim.lab.plan import Plan, make_plan
from kossim.lab.store import RunMeta, RunStore, write_error
from kossim.runspec import RunResult, RunSpec
from kossim.sim import simulate

__all__ = ["RunOutcome", "SweepInterrupted", "default_out_dir", "run_experiment"]


@dataclass(frozen=True)
class RunOutcome:
    """What one invocation did.

    ``n_ok`` and ``n_failed`` count the runs executed now; ``n_skipped`` the
    runs already complete in the folder (with ``resume``). Every planned run
    is ok when ``n_ok + n_skipped == len(plan.specs)``.
    """

    out_dir: Path
    plan: Plan
    n_ok: int
    n_failed: int
    n_skipped: int
    wall_time: float


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, see :mod:`kossim.lab.interrupt`) during a sweep; finished runs
    are stored and ``resume`` picks up the rest.

    A ``KeyboardInterrupt``, so code that only knows that still stops.
    """

    def __init__(self, out_dir: Path, n_stored: int, n_total: int) -> None:
        super().__init__(
            f"interrupted: {n_stored} of {plural(n_total, 'run')} stored in {out_dir / 'runs'}; "
            "run again with --resume to finish"
        )
        self.out_dir = out_dir
        self.n_stored = n_stored
        self.n_total = n_total


def default_out_dir(plan: Plan) -> Path:
    """``results/<name>/`` under the current directory."""
    return Path("results") / plan.experiment.name


def run_experiment(
    loaded: LoadedExperiment,
    out_dir: Path | None = None,
    *,
    executor: str | Executor = "local",
    jobs: int | None = None,
    address: str | None = None,
    resume: bool = False,
    trace: bool = False,
    progress: bool = True,
    seeds: list[int] | None = None,
    announce: bool = True,
) -> RunOutcome:
    """Simulate every run of the experiment into ``out_dir`` and aggregate the results.

    ``executor`` is ``"serial"``, ``"local"`` or ``"dask"`` (with ``jobs`` and
    ``address``), or an executor object. Without ``resume`` every run executes
    again and overwrites its files; with it, runs recorded ok are skipped. The
    folder is locked while the sweep writes it (:mod:`kossim.lab.folder_lock`).
    """
    plan = make_plan(loaded, trace=trace, seeds=seeds)
    out = Path(out_dir) if out_dir is not None else default_out_dir(plan)
    runner = make_executor(executor, jobs, address) if isinstance(executor, str) else executor
    with lock_folder(out):
        store = RunStore(out).open()
        # one line per message in a log; no emoji: user text is printed as written
        console = Console(stderr=True, soft_wrap=True, emoji=False)
        _warn_if_other_config(console, out, plan)
        ids = [spec.run_id for spec in plan.specs]
        done = store.completed_ids(ids, traced=trace)
        todo = [spec for spec in plan.specs if spec.run_id not in done] if resume else plan.specs
        if trace and runner.name in ("serial", "local"):  # workers that share this disk
            todo = [replace(spec, spill=str(store.runs)) for spec in todo]
        if progress and announce:  # --precision says what its later rounds reuse itself
            _announce(console, out, resume, len(done), len(plan.specs))
        started = time.perf_counter()
        try:
            counts = _execute(
                runner, plan, todo, store, _progress_bar(console, progress, len(todo))
            )
            wall_time = time.perf_counter() - started
            manifest = store.aggregate(plan, RunMeta(runner.name, runner.jobs, wall_time))
        except OSError as exc:  # a read-only or full disk: --out cannot hold the results
            raise write_error(exc, out) from None
        _warn_damaged(console, manifest)
        assess_load(plan, out, loaded.overrides)
    skipped = len(plan.specs) - len(todo)
    return RunOutcome(out, plan, counts["ok"], counts["failed"], skipped, wall_time)


def _execute(
    runner: Executor,
    plan: Plan,
    todo: list[RunSpec],
    store: RunStore,
    bar: AbstractContextManager[Callable[[RunResult], None]],
) -> dict[str, int]:
    """Run ``todo``, storing each result as it lands; counts by status."""
    counts = {"ok": 0, "failed": 0}
    with bar as advance:

        def on_result(result: RunResult) -> None:
            store.put(result, plan.swept)
            counts["ok" if result.status == "ok" else "failed"] += 1
            advance(result)

        try:
            runner.run(simulate, todo, on_result)
        except KeyboardInterrupt as exc:
            stored = len(plan.specs) - len(todo) + counts["ok"] + counts["failed"]
            raise SweepInterrupted(store.root, stored, len(plan.specs)) from exc
        finally:
            store.sync()  # the last batch, whatever ended the sweep (Ctrl-C too)
    return counts


def _warn_if_other_config(console: Console, out: Path, plan: Plan) -> None:
    """Say so when the folder holds results of another configuration (a ``--set``, an
    edited file), whose tables this sweep replaces."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        old_hash, old_config = manifest["config_hash"], manifest["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if old_hash == plan.config_hash:
        return
    changed = _changed_paths(old_config, plan.data)
    what = f" (differs in {', '.join(changed[:4])}{', ...' if len(changed) > 4 else ''})"
    console.print(
        f"warning: {out} holds results of another configuration{what if changed else ''}; "
        "its tables will describe this run. Use --out DIR to keep both.",
        style="yellow",
        markup=False,
        highlight=False,
    )


def _changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ (seeds and expectations aside, as in the hash)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix or "(whole file)"]
    paths = []
    for key in dict.fromkeys([*old, *new]):
        if not prefix and key in ("seeds", "expect"):
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in old or key not in new:
            paths.append(path)
        else:
            paths += _changed_paths(old[key], new[key], path)
    return paths


def _warn_damaged(console: Console, manifest: dict[str, Any]) -> None:
    """Name the runs left out of the tables because their files were damaged meanwhile."""
    damaged = [run for run in manifest["runs"] if run["status"] == "damaged"]
    if damaged:
        console.print(
            f"warning: {len(damaged)} run(s) left out of the tables, their files damaged: "
            + ", ".join(f"{r['run_id']} ({r['policy']}, seed {r['seed']})" for r in damaged)
            + "; run again with --resume",
            markup=False,
            highlight=False,
        )


def _announce(console: Console, out: Path, resume: bool, n_done: int, n_total: int) -> None:
    """Say what happens to runs already in the folder."""
    if resume:
        console.print(
            f"resuming {out}: {n_done} of {plural(n_total, 'run')} already complete",
            markup=False,
            highlight=False,
        )
    elif n_done:
        console.print(
            f"{out}: running all {plural(n_total, 'run')} again, overwriting {n_done} stored "
            "(use --resume to keep them)",
            markup=False,
            highlight=False,
        )


LOG_EVERY = 10.0
"""Seconds between progress lines when stderr is not a terminal (a CI log)."""


@contextmanager
def _progress_bar(
    console: Console, enabled: bool, total: int
) -> Iterator[Callable[[RunResult], None]]:
    """A runs-done / failed / elapsed / ETA bar on a terminal; lines in a log."""
    if enabled and not console.is_terminal:
        with _progress_lines(console, total) as log_line:
            yield log_line
        return
    bar = Progress(
        TextColumn("[bold]runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
    )
    task = bar.add_task("runs", total=total, failed=0)
    failed = 0

    def advance(result: RunResult) -> None:
        nonlocal failed
        failed += result.status != "ok"
        bar.update(task, advance=1, failed=failed)

    with bar:
        yield advance


@contextmanager
def _progress_lines(console: Console, total: int) -> Iterator[Callable[[RunResult], None]]:
    """A line at each tenth of the runs, at most every ``LOG_EVERY`` seconds, and at the end,
    for CI logs, where a live bar shows nothing until the job ends."""
    started = last = time.monotonic()
    done = failed = 0

    def line() -> None:
        elapsed = time.monotonic() - started
        eta = elapsed / done * (total - done) if done else float("nan")
        eta_text = f", about {eta:.0f} s left" if done < total and done else ""
        console.print(
            f"runs: {done} of {total} done, {failed} failed, {elapsed:.0f} s{eta_text}",
            highlight=False,
        )

    def advance(result: RunResult) -> None:
        nonlocal done, failed, last
        done += 1
        failed += result.status != "ok"
        now = time.monotonic()
        step = max(1, total // 10)
        if (
            done == total
            or (done % step == 0 and now - last >= LOG_EVERY)
            or (now - last >= 6 * LOG_EVERY)
        ):
            last = now
            line()

    yield advance

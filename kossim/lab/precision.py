"""Sequential stopping: add seeds until a metric's confidence interval is tight enough.

``kossim run EXP --precision sojourn_mean:0.05`` runs the experiment's seeds,
then, while some (policy, sweep point) has a 95 % half-width above 5 % of its
mean, adds seeds and resumes (run ids do not depend on the seed list, so
finished runs are reused) until every one meets the target or ``max_seeds``
is reached. Each round at most doubles the seed count, so an early, noisy
variance estimate cannot demand a huge round.

The metric is checked before the first round. When ``max_seeds`` stops the
rounds first, the manifest records ``met: false`` with the half-width reached
and the seeds the target would need (not capped at ``max_seeds``); the CLI
says so and exits 1.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from rich.console import Console

from kossim.analysis.metrics import CORE_METRICS
from kossim.analysis.stats import METRIC_COLUMNS, SUMMARY_COLUMNS, required_seeds
from kossim.config.experiment import LoadedExperiment
from kossim.errors import KossimInputError
from kossim.lab.atomic import atomic_write
from kossim.lab.sweep import RunOutcome
from kossim.report.metrics_meta import METRIC_DIRECTION

__all__ = ["PrecisionTarget", "parse_target", "run_to_precision", "shortfall"]

MIN_SEEDS = 3


@dataclass(frozen=True)
class PrecisionTarget:
    metric: str
    rel: float
    scope: str = "all"
    max_seeds: int = 100
    level: float = 0.95


def parse_target(text: str, max_seeds: int = 100) -> PrecisionTarget:
    """``metric:rel`` or ``metric@scope:rel`` (e.g. ``sojourn_mean:0.05``)."""
    name, sep, rel = text.rpartition(":")
    metric, _, scope = name.partition("@")
    try:
        value = float(rel)
    except ValueError:
        value = -1.0
    if not sep or not metric or not 0 < value < 1:
        raise KossimInputError.single(
            "--precision takes METRIC:REL with 0 < REL < 1, e.g. sojourn_mean:0.05",
            path="--precision",
            got=text,
        )
    known = sorted(set(CORE_METRICS) | set(METRIC_DIRECTION))
    if metric not in known:
        close = difflib.get_close_matches(metric, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise KossimInputError.single(
            f"unknown metric {metric!r}; {hint}metrics: {', '.join(known)}",
            path="--precision",
            got=text,
        )
    scope = scope or "all"
    if scope != "all" and not scope.startswith(("priority=", "type=", "agent=")):
        raise KossimInputError.single(
            "a scope is all, priority=K, type=T or agent=NAME", path="--precision", got=text
        )
    return PrecisionTarget(metric, value, scope, max_seeds)


def _check_round(metrics: Path, target: PrecisionTarget) -> tuple[bool, int, list[dict[str, Any]]]:
    """Whether every group of the ``metrics`` file meets the target, the seeds the worst one
    needs, per-group detail (groups in first-seen order)."""
    table = pq.ParquetFile(metrics).read()  # not read_table: see kossim.lab.tables
    fixed = {*METRIC_COLUMNS, *SUMMARY_COLUMNS}
    keys = ["policy", *(c for c in table.column_names if c not in fixed)]
    columns = {c: table.column(c).to_pylist() for c in [*keys, "metric", "scope", "value"]}
    groups: dict[tuple[Any, ...], list[float]] = {}
    for i, (metric, scope) in enumerate(zip(columns["metric"], columns["scope"], strict=True)):
        if metric == target.metric and scope == target.scope:
            key = tuple(_label(columns[k][i]) for k in keys)
            value = columns["value"][i]
            groups.setdefault(key, []).append(float("nan") if value is None else value)
    if not groups:
        raise KossimInputError.single(
            f"no metric {target.metric!r} in scope {target.scope!r} to reach a precision on",
            path="--precision",
        )
    met, need, detail = True, 0, []
    for key, values in groups.items():
        check = required_seeds(np.asarray(values, dtype=float), target.rel, target.level)
        met &= check.met
        need = max(need, check.required)
        detail.append({**dict(zip(keys, key, strict=True)), **_plain(asdict(check))})
    return met, need, detail


def _label(value: Any) -> str:
    """A key cell as text (a missing one as ``nan``, as pandas shows it)."""
    return "nan" if value is None else str(value)


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, float) else v) for k, v in d.items()}


def run_to_precision(
    loaded: LoadedExperiment,
    target: PrecisionTarget,
    run: Callable[..., RunOutcome],
    **options: Any,
) -> RunOutcome:
    """Run rounds of ``run(loaded, seeds=..., resume=...)`` until the target is met.

    The outcome counts every run executed over all rounds; ``n_skipped`` is
    what an explicit ``resume`` found already done before the first round.
    """
    seeds = loaded.experiment.seed_list()
    if len(seeds) < MIN_SEEDS:
        seeds = list(range(MIN_SEEDS))
    rounds: list[dict[str, Any]] = []
    resume = bool(options.pop("resume", False))
    say = Console(stderr=True, soft_wrap=True).print
    n_ok = n_failed = 0
    first: RunOutcome | None = None
    while True:
        outcome = run(loaded, seeds=seeds, resume=resume, announce=not rounds, **options)
        first = first or outcome
        n_ok, n_failed = n_ok + outcome.n_ok, n_failed + outcome.n_failed
        met, need, detail = _check_round(outcome.out_dir / "metrics.parquet", target)
        widths = [g["rel_halfwidth"] for g in detail if g["rel_halfwidth"] == g["rel_halfwidth"]]
        worst = max(widths, default=float("nan"))
        rounds.append(
            {"seeds": len(seeds), "met": bool(met), "required": int(need), "worst": worst}
        )
        say(_round_text(len(rounds), len(seeds), target, worst, met, need), highlight=False)
        if met or len(seeds) >= target.max_seeds:
            break
        grow = min(target.max_seeds, max(need, len(seeds) + 1), 2 * len(seeds))
        say(f"precision round {len(rounds) + 1}: adding {grow - len(seeds)} seeds ({grow} in "
            f"all; the runs of the first {len(seeds)} are reused)", highlight=False)  # fmt: skip
        seeds = seeds + [max(seeds) + 1 + i for i in range(grow - len(seeds))]
        resume = True  # the next round reuses this one's runs
    _record(outcome.out_dir, target, met, rounds, detail)
    return replace(outcome, n_ok=n_ok, n_failed=n_failed, n_skipped=first.n_skipped)


def _round_text(
    number: int, seeds: int, target: PrecisionTarget, worst: float, met: bool, need: int
) -> str:
    where = "" if target.scope == "all" else f"@{target.scope}"
    reached = f"widest 95 % half-width {_pct(worst)} of the mean (target {_pct(target.rel)})"
    verdict = "met" if met else f"about {need} seeds needed"
    return f"precision round {number}: {seeds} seeds, {target.metric}{where} {reached}: {verdict}"


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def shortfall(manifest: dict[str, Any]) -> str | None:
    """Why a ``--precision`` run stopped short of its target, or ``None`` if it did not."""
    precision = manifest.get("precision")
    if not isinstance(precision, dict) or precision.get("met", True):
        return None
    last = (precision.get("rounds") or [{}])[-1]
    scope = precision.get("scope", "all")
    where = "" if scope == "all" else f"@{scope}"
    return (
        f"precision target not met: {precision.get('metric')}{where} reached a 95 % half-width "
        f"of {_pct(last.get('worst', float('nan')))} of the mean (target "
        f"{_pct(precision.get('rel', float('nan')))}) with {last.get('seeds')} seeds, the "
        f"--max-seeds cap; about {last.get('required')} seeds would meet it "
        "(rerun with --max-seeds and --resume to add them)"
    )


def _record(
    out: Path,
    target: PrecisionTarget,
    met: bool,
    rounds: list[dict[str, Any]],
    detail: list[dict[str, Any]],
) -> None:
    """Add the stopping rule and its outcome to manifest.json."""
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["precision"] = {
        **asdict(target),
        "met": bool(met),
        "rounds": rounds,
        "groups": detail,
    }
    atomic_write(path, json.dumps(manifest, indent=2, default=str).encode())

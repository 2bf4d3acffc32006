"""Sequential stopping: add seeds until a metric's confidence interval is tight enough.

``kossim run EXP --precision sojourn_mean:0.05`` runs the experiment's seeds,
then, while some (policy, sweep point) has a 95 % half-width above 5 % of its
mean, adds seeds and resumes (run ids do not depend on the seed list, so
finished runs are reused) until every one meets the target or ``max_seeds``
is reached. Each round at most doubles the seed count, so an early, noisy
variance estimate cannot demand a huge round.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kossim.atomic import atomic_write
from kossim.config.experiment import LoadedExperiment
from kossim.errors import KossimInputError
from kossim.lab import RunOutcome
from kossim.stats import required_seeds, swept_columns

__all__ = ["PrecisionTarget", "parse_target", "run_to_precision"]

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
    return PrecisionTarget(metric, value, scope or "all", max_seeds)


def _check_round(
    metrics: pd.DataFrame, target: PrecisionTarget
) -> tuple[bool, int, list[dict[str, Any]]]:
    """Whether every group meets the target, the seeds the worst one needs, per-group detail."""
    rows = metrics[(metrics["metric"] == target.metric) & (metrics["scope"] == target.scope)]
    if rows.empty:
        raise KossimInputError.single(
            f"no metric {target.metric!r} in scope {target.scope!r} to reach a precision on",
            path="--precision",
        )
    keys = ["policy", *swept_columns(metrics)]
    met, need, detail = True, 0, []
    for group, part in rows.groupby(keys, sort=False, dropna=False):
        check = required_seeds(part["value"].to_numpy(), target.rel, target.level, target.max_seeds)
        met &= check.met
        need = max(need, check.required)
        label = dict(zip(keys, group if isinstance(group, tuple) else (group,), strict=True))
        detail.append({**{k: str(v) for k, v in label.items()}, **_plain(asdict(check))})
    return met, need, detail


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, float) else v) for k, v in d.items()}


def run_to_precision(
    loaded: LoadedExperiment,
    target: PrecisionTarget,
    run: Callable[..., RunOutcome],
    **options: Any,
) -> RunOutcome:
    """Run rounds of ``run(loaded, seeds=..., resume=...)`` until the target is met."""
    seeds = loaded.experiment.seed_list()
    if len(seeds) < MIN_SEEDS:
        seeds = list(range(MIN_SEEDS))
    rounds: list[dict[str, Any]] = []
    resume = bool(options.pop("resume", False))
    while True:
        outcome = run(loaded, seeds=seeds, resume=resume, **options)
        resume = True
        metrics = pd.read_parquet(outcome.out_dir / "metrics.parquet")
        met, need, detail = _check_round(metrics, target)
        rounds.append({"seeds": len(seeds), "met": bool(met), "required": int(need)})
        if met or len(seeds) >= target.max_seeds:
            break
        grow = min(target.max_seeds, max(need, len(seeds) + 1), 2 * len(seeds))
        seeds = seeds + [max(seeds) + 1 + i for i in range(grow - len(seeds))]
    _record(outcome.out_dir, target, met, rounds, detail)
    return outcome


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

"""Expanding an experiment into runs: policies x sweep points x seeds.

``sweep:`` maps dotted paths to lists of values (a grid: the cartesian
product, in file order), and may hold one ``zip:`` mapping whose lists vary
together (one axis of the grid). Every point is validated on its own, so an
impossible swept value is reported at the sweep entry that produced it.
"""

from __future__ import annotations

import copy
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kossim.config.experiment import LoadedExperiment, validate_data
from kossim.config.loader import set_path
from kossim.config.models import Experiment
from kossim.config.runsize import run_size_problems
from kossim.config.sweep import check_at, check_sweep, sweep_key
from kossim.datafiles import file_digest
from kossim.errors import UNSET, KossimInputError
from kossim.registry import KINDS, resolve
from kossim.runspec import RunSpec, stable_hash

__all__ = [
    "Plan",
    "Point",
    "make_plan",
    "run_config",
    "run_inputs",
    "sweep_axes",
    "sweep_points",
]

Point = tuple[tuple[str, Any], ...]
MAX_RUNS = 1_000_000
"""Runs one experiment may plan (each is a record, a file set and a row block)."""
NOT_RUN_INPUT = ("seeds", "sweep", "expect", "description")
"""Fields that do not change what a run simulates (left out of its config and hash)."""


@dataclass(frozen=True)
class Plan:
    """The runs of one experiment, in deterministic order."""

    experiment: Experiment
    data: dict[str, Any]
    swept: list[str]
    points: list[Point]
    seeds: list[int]
    specs: list[RunSpec]
    config_hash: str


def sweep_axes(sweep: dict[str, Any]) -> list[list[Point]]:
    """One list of partial points per axis: a grid path, or the whole ``zip`` group."""
    axes: list[list[Point]] = []
    for key, values in sweep.items():
        if key == "zip":
            if not isinstance(values, dict) or not values:
                raise ValueError("sweep.zip maps paths to lists of equal length")
            lengths = {len(v) if isinstance(v, list) else -1 for v in values.values()}
            if len(lengths) != 1 or -1 in lengths or 0 in lengths:
                raise ValueError(
                    f"sweep.zip lists must be non-empty and of equal length (got lengths "
                    f"{[len(v) if isinstance(v, list) else None for v in values.values()]})"
                )
            n = lengths.pop()
            axes.append([tuple((p, values[p][i]) for p in values) for i in range(n)])
        else:
            if not isinstance(values, list) or not values:
                raise ValueError(f"sweep.{key} must be a non-empty list of values")
            axes.append([((key, v),) for v in values])
    return axes


def sweep_points(sweep: dict[str, Any]) -> list[Point]:
    """Every point of the grid (a single empty point when nothing is swept)."""
    axes = sweep_axes(sweep)
    return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*axes)]


def run_config(data: dict[str, Any], point: Point, policy: str) -> dict[str, Any]:
    """The plain config one run simulates: the point applied, one policy, no meta fields."""
    cfg = {k: copy.deepcopy(v) for k, v in data.items() if k not in NOT_RUN_INPUT}
    for path, value in point:
        set_path(cfg, path, copy.deepcopy(value))
    cfg["policies"] = [p for p in cfg["policies"] if p.get("name") == policy]
    return cfg


def make_plan(
    loaded: LoadedExperiment, *, trace: bool = False, seeds: list[int] | None = None
) -> Plan:
    """Validate every sweep point and list the runs (policy-major, then point, then seed)."""
    exp, data, source = loaded.experiment, loaded.data, loaded.source
    file = str(loaded.path) if loaded.path else None
    try:
        sweep_axes(data.get("sweep") or {})
    except ValueError as exc:
        raise KossimInputError([source.problem(("sweep",), str(exc))]) from None
    check_sweep(data, source)  # before expanding: it bounds the number of points
    points = sweep_points(data.get("sweep") or {})
    swept = [path for path, _ in points[0]] if points else []
    check_at(list(exp.expect), points, source)
    entries = _sweep_entries(data.get("sweep") or {})
    for point in points:
        _check_point(data, point, source, file, entries)
    seed_list = seeds if seeds is not None else exp.seed_list()
    n_runs = len(exp.policies) * len(points) * len(seed_list)
    if n_runs > MAX_RUNS:
        message = (
            f"{len(exp.policies)} policies x {len(points)} points x {len(seed_list)} seeds = "
            f"{n_runs} runs; an experiment has at most {MAX_RUNS}"
        )
        raise KossimInputError([source.problem(("seeds",), message)])
    digests: dict[str, str | None] = {}
    specs = []
    for pol in exp.policies:
        for point in points:
            config = run_config(data, point, pol.name)
            inputs = run_inputs(config, digests)
            specs += [
                RunSpec.make(config, pol.name, point, seed, trace, inputs) for seed in seed_list
            ]
    config_hash = stable_hash({k: v for k, v in data.items() if k not in ("seeds", "expect")})
    return Plan(exp, data, swept, points, seed_list, specs, config_hash)


def run_inputs(
    config: dict[str, Any], digests: dict[str, str | None] | None = None
) -> dict[str, str]:
    """What a run reads besides its config and kossim's own code, with digests of contents.

    ``file:<path>``: the data file of an empirical distribution (SHA-256 of its
    bytes). ``component:<kind>:<id>``: a component that is not built in (a
    ``module:Class`` or a plugin's id), by the SHA-256 of its module's source
    file; built-in components are covered by the engine fingerprint instead.
    ``digests`` caches the digests across the runs of a plan.
    """
    cache = digests if digests is not None else {}
    found: dict[str, str] = {}
    for key, compute in _inputs_of(config):
        if key not in cache:
            cache[key] = compute()
        digest = cache[key]
        if digest is not None:
            found[key] = digest
    return dict(sorted(found.items()))


def _inputs_of(node: Any, kind: str | None = None) -> list[tuple[str, Callable[[], str | None]]]:
    found: list[tuple[str, Callable[[], str | None]]] = []
    if isinstance(node, dict):
        if node.get("dist") == "empirical" and isinstance(node.get("file"), str):
            path = node["file"]
            found.append((f"file:{path}", lambda: file_digest(path)))
        timeline = node.get("timeline")
        if isinstance(timeline, dict) and isinstance(timeline.get("csv"), str):
            csv = timeline["csv"]
            found.append((f"file:{csv}", lambda: file_digest(csv)))
        for key, value in node.items():
            found += _inputs_of(value, str(key))
    elif isinstance(node, list):
        for value in node:
            found += _inputs_of(value, kind)
    ident = node.get("id") if isinstance(node, dict) else node
    if kind in KINDS and isinstance(ident, str):
        found.append((f"component:{kind}:{ident}", lambda: _component_digest(str(kind), node)))
    return found


_BUILT_IN = ("kossim", "policies")
"""Packages whose sources the engine fingerprint covers."""


def _component_digest(kind: str, ref: str | dict[str, Any]) -> str | None:
    """SHA-256 of the module source of a component that is not built in, else None."""
    cls = resolve(kind, ref).cls
    if cls.__module__.split(".")[0] in _BUILT_IN:
        return None
    source = getattr(sys.modules.get(cls.__module__), "__file__", None)
    return file_digest(source) if source else stable_hash(cls.__module__, 64)


def _check_point(
    data: dict[str, Any],
    point: Point,
    source: Any,
    file: str | None,
    entries: dict[tuple[str, Any], tuple[str | int, ...]],
) -> None:
    # The sweep block is shared, not copied: no point sets a path inside it (check_sweep),
    # and copying it at every point made validation quadratic in the number of points.
    cfg = {k: v if k == "sweep" else copy.deepcopy(v) for k, v in data.items()}
    for path, value in point:
        # A path need not exist in the file (a default, a component parameter left
        # unset): setting it is enough, and validation reports an unknown field at
        # the sweep entry through the source map's origin.
        try:
            where = set_path(cfg, path, copy.deepcopy(value))
        except KossimInputError as exc:
            problem = exc.problems[0]
            raise KossimInputError(
                [source.problem(("sweep", path), f"cannot sweep {path!r}: {problem.message}")]
            ) from None
        entry = entries.get((path, sweep_key(value)), ("sweep", path))
        source = source.with_origin(where, entry)
    try:
        exp = validate_data(cfg, source, file)
        problems = [
            source.problem(path, message, UNSET if got is None else got)
            for path, message, got in run_size_problems(exp)
        ]
        if problems:
            raise KossimInputError(problems)
    except KossimInputError as exc:
        if not point:
            raise
        label = ", ".join(f"{p}={v!r}" for p, v in point)
        raise KossimInputError(
            [replace(p, message=f"{p.message} [at sweep point {label}]") for p in exc.problems]
        ) from None


def _sweep_entries(sweep: dict[str, Any]) -> dict[tuple[str, Any], tuple[str | int, ...]]:
    """Where in the file each swept value was written, by (path, value key)."""
    entries: dict[tuple[str, Any], tuple[str | int, ...]] = {}
    for key, values in sweep.items():
        lists = values.items() if key == "zip" and isinstance(values, dict) else [(key, values)]
        where = ("sweep", "zip") if key == "zip" and isinstance(values, dict) else ("sweep",)
        for path, items in lists:
            for index, value in enumerate(items if isinstance(items, list) else []):
                entries.setdefault((path, sweep_key(value)), (*where, path, index))
    return entries

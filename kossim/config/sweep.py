"""Checks of the ``sweep:`` block as a whole, before any point is expanded.

A sweep that the grid would expand without complaint can still lie: a value
listed twice makes one point run twice, and its seeds pool as if they were
more replications (an interval too narrow, silently); a field swept both in
the grid and in ``zip:`` (or under two spellings of its path) is set twice per
point, so the grid counts points that are not distinct. Each such sweep is a
located error here.
"""

from __future__ import annotations

from typing import Any

from kossim.config.loader import SourceMap
from kossim.config.paths import data_path
from kossim.errors import InputProblem, KossimInputError, render_value

__all__ = ["MAX_POINTS", "check_at", "check_sweep", "sweep_key"]

MAX_POINTS = 10_000
"""Sweep points one experiment may have: each is validated, so more would take minutes."""

_NOT_SWEPT = {
    "name": "the experiment's name is not a run input",
    "description": "the description is not a run input",
    "seeds": "seeds are replications, not a sweep axis; list them under seeds:",
    "sweep": "a sweep cannot sweep itself",
    "expect": "expectations judge the results; they are not a run input",
}


def sweep_key(value: Any) -> Any:
    """A hashable form of a swept value under which equal values are equal.

    Numbers compare by value (``3`` and ``3.0`` are one value), booleans stay
    apart from numbers, and mappings compare regardless of key order.
    """
    if isinstance(value, bool) or value is None:
        return ("const", value)
    if isinstance(value, int | float):
        return ("num", value)  # Python compares 3 == 3.0 exactly and hashes them alike
    if isinstance(value, list | tuple):
        return ("list", tuple(sweep_key(v) for v in value))
    if isinstance(value, dict):
        return ("map", tuple(sorted((str(k), sweep_key(v)) for k, v in value.items())))
    return ("str", str(value))


def check_sweep(data: dict[str, Any], source: SourceMap) -> None:
    """Raise a located error for repeated values, overlapping paths or unsweepable fields."""
    sweep = data.get("sweep") or {}
    if not isinstance(sweep, dict):
        return
    problems: list[InputProblem] = []
    entries: list[tuple[str, tuple[str | int, ...]]] = []  # (path, where in the file)
    for key, values in sweep.items():
        if key == "zip" and isinstance(values, dict):
            entries += [(path, ("sweep", "zip", path)) for path in values]
            problems += _repeated_zip_points(values, source)
        else:
            entries.append((key, ("sweep", key)))
            if isinstance(values, list):
                problems += _repeated_values(values, ("sweep", key), source)
    problems += _overlapping_paths(data, entries, source)
    if problems:
        raise KossimInputError(problems)
    points = 1
    for key, values in sweep.items():
        group = list(values.values()) if key == "zip" and isinstance(values, dict) else [values]
        points *= min((len(v) for v in group if isinstance(v, list)), default=1)
    if points > MAX_POINTS:
        raise KossimInputError(
            [
                source.problem(
                    ("sweep",),
                    f"{points} sweep points; an experiment has at most {MAX_POINTS} "
                    "(split it into several experiments)",
                )
            ]
        )


def check_at(
    expectations: list[Any], points: list[tuple[tuple[str, Any], ...]], source: SourceMap
) -> None:
    """An expectation's ``at:`` names swept paths and values that some point has."""
    swept: dict[str, set[Any]] = {}
    for point in points:
        for path, value in point:
            swept.setdefault(path, set()).add(sweep_key(value))
    problems = []
    for index, exp in enumerate(expectations):
        for path, value in (getattr(exp, "at", None) or {}).items():
            where = ("expect", index, "at", path)
            if path not in swept:
                names = ", ".join(swept) or "nothing is swept"
                problems.append(source.problem(where, f"not a swept path (swept: {names})"))
            elif sweep_key(value) not in swept[path]:
                problems.append(source.problem(where, "no sweep point has this value", value))
    if problems:
        raise KossimInputError(problems)


def _repeated_values(
    values: list[Any], where: tuple[str | int, ...], source: SourceMap
) -> list[InputProblem]:
    first: dict[Any, int] = {}
    problems = []
    for index, value in enumerate(values):
        key = sweep_key(value)
        if key in first:
            problems.append(
                source.problem(
                    (*where, index),
                    f"repeats item {first[key]} ({render_value(values[first[key]])}); "
                    "equal sweep values would pool as extra seeds",
                    value,
                )
            )
        else:
            first[key] = index
    return problems


def _repeated_zip_points(group: dict[str, Any], source: SourceMap) -> list[InputProblem]:
    lists = list(group.values())
    if not lists or not all(isinstance(v, list) for v in lists):
        return []  # sweep_axes reports the shape
    first: dict[Any, int] = {}
    problems = []
    paths = list(group)
    for index in range(min(len(v) for v in lists)):
        key = tuple(sweep_key(v[index]) for v in lists)
        if key in first:
            problems.append(
                source.problem(
                    ("sweep", "zip", paths[0], index),
                    f"zip point {index} repeats point {first[key]} (every list has equal "
                    "values there); equal sweep points would pool as extra seeds",
                )
            )
        else:
            first[key] = index
    return problems


def _overlapping_paths(
    data: dict[str, Any], entries: list[tuple[str, tuple[str | int, ...]]], source: SourceMap
) -> list[InputProblem]:
    problems = []
    seen: list[tuple[tuple[str | int, ...], str, tuple[str | int, ...]]] = []
    for path, where in entries:
        try:
            target = data_path(data, path)
        except KossimInputError:
            continue  # reported with the point that sets it
        reason = _unsweepable(target)
        if reason is not None:
            problems.append(source.problem(where, f"cannot sweep {path!r}: {reason}"))
            continue
        for other_target, other, other_where in seen:
            shorter = min(len(target), len(other_target))
            if target[:shorter] == other_target[:shorter]:
                message = _overlap_message(path, other, other_where, source)
                problems.append(source.problem(where, message))
                break
        seen.append((target, path, where))
    return problems


def _overlap_message(
    path: str, other: str, other_where: tuple[str | int, ...], source: SourceMap
) -> str:
    place = "in zip:" if other_where[:2] == ("sweep", "zip") else "in the grid"
    position = source.locate(other_where) if other_where in source else None
    if position is not None:
        place += f" at line {position[0]}"
    if path == other:
        what = f"{path!r} is also swept {place}"
    else:
        what = f"{path!r} sets the same field as {other!r}, swept {place}"
    return f"{what}; sweep each field in one place"


def _unsweepable(target: tuple[str | int, ...]) -> str | None:
    if target and target[0] in _NOT_SWEPT:
        return _NOT_SWEPT[str(target[0])]
    if target[:1] == ("policies",) and len(target) <= 3 and target[2:] in ((), ("name",)):
        return (
            "a policy's name identifies it in the results; sweep one of its components "
            "(policies.NAME.routing, ...) instead"
        )
    return None

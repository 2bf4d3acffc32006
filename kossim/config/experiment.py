"""Loading an experiment file: YAML -> overrides -> validated :class:`Experiment`.

Every input error, whatever layer finds it, becomes a
:class:`~kossim.errors.KossimInputError` naming file, line, field and what is
allowed; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kossim.config.loader import SourceMap, load_yaml, parse_set, set_path, validation_problems
from kossim.config.models import Experiment
from kossim.errors import KossimInputError
from kossim.registry import locate, searching

__all__ = ["LoadedExperiment", "load_experiment", "validate_data"]


@dataclass(frozen=True)
class LoadedExperiment:
    """A validated experiment with the plain data and source map it came from."""

    experiment: Experiment
    data: dict[str, Any]
    source: SourceMap
    path: Path | None
    overrides: tuple[str, ...] = ()
    """The ``--set path=value`` expressions applied, in order (the report lists them)."""


def validate_data(
    data: Any, source: SourceMap, file: str | None = None, prefix: tuple[str | int, ...] = ()
) -> Experiment:
    """Validate plain data as an experiment, or raise a located input error."""
    if not isinstance(data, dict):
        raise KossimInputError.single(
            "an experiment file is a mapping (name, scenario, policies, ...)", file=file
        )
    try:
        return Experiment.model_validate(data)
    except ValidationError as exc:
        raise KossimInputError(
            validation_problems(exc, source, file, data=data, model=Experiment, prefix=prefix)
        ) from None


def load_experiment(path: Path | str, overrides: list[str] | None = None) -> LoadedExperiment:
    """Load, apply ``--set path=value`` overrides, resolve relative files, validate."""
    path = Path(path)
    data, source = load_yaml(path)
    data = copy.deepcopy(data)
    for expr in overrides or []:
        key, value = parse_set(expr)
        # A problem in an overridden value is reported as coming from --set, not from
        # the line of the file whose value it replaced.
        source = source.with_origin(set_path(data, key, value), "--set")
    if isinstance(data, dict):
        _absolute_files(data, path.parent)
        _absolute_components(data, path.parent)
    with searching(path.parent):
        exp = validate_data(data, source, str(path))
    return LoadedExperiment(exp, data, source, path, tuple(overrides or ()))


def _absolute_components(data: dict[str, Any], base: Path) -> None:
    """Make ``module:Class`` references found beside the experiment (or in the working
    directory) absolute file references, so workers load the same code wherever they run."""
    policies = data.get("policies")
    for policy in policies if isinstance(policies, list) else []:
        if not isinstance(policy, dict):
            continue
        for kind, ref in policy.items():
            if isinstance(ref, str) and ":" in ref:
                policy[kind] = locate(ref, base)
            elif isinstance(ref, dict) and isinstance(ref.get("id"), str) and ":" in ref["id"]:
                ref["id"] = locate(ref["id"], base)


def _absolute_files(node: Any, base: Path) -> None:
    """Make ``file:`` entries of empirical distributions (and a timeline's ``csv:``) absolute,
    so workers find them."""
    if isinstance(node, dict):
        if node.get("dist") == "empirical" and isinstance(node.get("file"), str):
            f = Path(node["file"])
            node["file"] = str(f if f.is_absolute() else (base / f).resolve())
        timeline = node.get("timeline")  # a scenario's timeline from a CSV file
        if isinstance(timeline, dict) and isinstance(timeline.get("csv"), str):
            f = Path(timeline["csv"])
            timeline["csv"] = str(f if f.is_absolute() else (base / f).resolve())
        for v in node.values():
            _absolute_files(v, base)
    elif isinstance(node, list):
        for v in node:
            _absolute_files(v, base)

"""Reading and validating experiment files: YAML with source positions, located errors.

:mod:`~kossim.config.loader` reads YAML into plain data and a source map,
:mod:`~kossim.config.problems` turns validation errors into located problems,
:mod:`~kossim.config.paths` addresses the data by dotted paths, and
:mod:`~kossim.config.experiment` puts them together for an experiment file.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "FieldError",
    "SourceMap",
    "did_you_mean",
    "get_path",
    "load_yaml",
    "load_yaml_text",
    "parse_set",
    "set_path",
    "validation_problems",
]

_HOME = {
    "SourceMap": "loader",
    "load_yaml": "loader",
    "load_yaml_text": "loader",
    "get_path": "paths",
    "parse_set": "paths",
    "set_path": "paths",
    "FieldError": "problems",
    "did_you_mean": "problems",
    "validation_problems": "problems",
}


def __getattr__(name: str) -> Any:
    """Load a submodule on first use (PEP 562): the engine imports ``kossim.config.models``
    alone, and must not pay for the YAML loader."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'kossim.config' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kossim.config.{home}"), name)

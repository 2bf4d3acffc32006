"""Reading and validating experiment files: YAML with source positions, located errors.

:mod:`~kossim.config.loader` reads YAML into plain data and a source map,
:mod:`~kossim.config.problems` turns validation errors into located problems,
:mod:`~kossim.config.paths` addresses the data by dotted paths, and
:mod:`~kossim.config.experiment` puts them together for an experiment file.
"""

from __future__ import annotations

from kossim.config.loader import SourceMap, load_yaml, load_yaml_text
from kossim.config.paths import get_path, parse_set, set_path
from kossim.config.problems import FieldError, did_you_mean, validation_problems

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

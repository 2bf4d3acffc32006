"""Reading and validating experiment files: YAML with source positions, located errors."""

from __future__ import annotations

from kossim.config.loader import (
    SourceMap,
    did_you_mean,
    get_path,
    load_yaml,
    load_yaml_text,
    parse_set,
    set_path,
    validation_problems,
)

__all__ = [
    "SourceMap",
    "did_you_mean",
    "get_path",
    "load_yaml",
    "load_yaml_text",
    "parse_set",
    "set_path",
    "validation_problems",
]

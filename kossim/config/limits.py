"""Resource limits on YAML input, so a hostile file ends in an error, not a hang.

A 1 kB file of nested aliases ("billion laughs") expands to billions of
values; a file of a few megabytes takes minutes to parse with positions; a
deeply nested one exhausts the interpreter's stack. Each limit is generous
for any experiment file a person writes, and each can be raised through an
environment variable named in the error that reports it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from kossim.errors import KossimInputError

__all__ = [
    "LIMIT_VARIABLES",
    "RUN_EVENTS_VARIABLE",
    "YamlLimits",
    "max_run_events",
    "run_events_hint",
]

LIMIT_VARIABLES: Final = {
    "max_bytes": ("KOSSIM_YAML_MAX_BYTES", 1 << 20),
    "max_depth": ("KOSSIM_YAML_MAX_DEPTH", 64),
    "max_values": ("KOSSIM_YAML_MAX_VALUES", 250_000),
}
"""Limit -> (environment variable that sets it, default)."""

RUN_EVENTS_VARIABLE: Final = "KOSSIM_MAX_RUN_EVENTS"
_RUN_EVENTS_DEFAULT: Final = 10_000_000
"""Arrivals (or failure cycles) one run may expect: about 1.5 GB of task records and a few
minutes of simulation; beyond it a run would exhaust memory or never end."""


def max_run_events() -> int:
    """The bound on a run's expected arrivals or failure cycles (environment, else default)."""
    return _positive(RUN_EVENTS_VARIABLE, _RUN_EVENTS_DEFAULT)


def run_events_hint() -> str:
    """``"(the limit is N; raise it with VAR=M)"`` for :func:`max_run_events`."""
    value = max_run_events()
    return f"(the limit is {value:.3g}; raise it with {RUN_EVENTS_VARIABLE}={value * 10})"


def _positive(variable: str, default: int) -> int:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise KossimInputError.single(
            "the environment variable must be a positive integer", path=variable, got=text
        )
    return value


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on one YAML document: its size, its nesting and its values after aliases."""

    max_bytes: int = LIMIT_VARIABLES["max_bytes"][1]
    max_depth: int = LIMIT_VARIABLES["max_depth"][1]
    max_values: int = LIMIT_VARIABLES["max_values"][1]

    @classmethod
    def from_env(cls) -> YamlLimits:
        """The defaults, each replaced by its environment variable when set."""
        values = {
            field: _positive(variable, default)
            for field, (variable, default) in LIMIT_VARIABLES.items()
        }
        return cls(**values)

    def hint(self, field: str) -> str:
        """``"(the limit is N; raise it with VAR=M)"``."""
        variable = LIMIT_VARIABLES[field][0]
        value = getattr(self, field)
        return f"(the limit is {value}; raise it with {variable}={value * 4})"

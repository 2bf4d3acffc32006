"""What every model of the experiment file shares: strictness, names, limits."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from kossim.errors import FieldError

__all__ = ["COORDINATOR", "PRIORITY_MAX", "Name", "Strict", "unique"]

PRIORITY_MAX = 2**15 - 1
"""Priorities are recorded in a 16-bit integer column."""
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$", max_length=80)]
COORDINATOR = "coordinator"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def unique(names: list[str], what: str, field: str, *at: str) -> None:
    """Raise at the second of two equal names (``at``: the list's path from the model)."""
    seen: set[str] = set()
    for index, n in enumerate(names):
        if n in seen:
            raise FieldError(f"duplicate {what} {n!r}", *at, index, field)
        seen.add(n)

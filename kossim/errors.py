"""Errors in user input (experiment files, ``--set`` overrides).

A :class:`KossimInputError` carries one :class:`InputProblem` per thing that
is wrong, each naming where it is (file, line, column, field path) and what
was found there. The CLI catches it and exits with code 2; anything else that
escapes is a bug in kossim, not in the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

__all__ = [
    "UNSET",
    "FieldError",
    "InputProblem",
    "KossimInputError",
    "render_value",
]

_MAX_VALUE_CHARS = 60


class _Unset:
    """Marks "no value to show"; distinct from ``None``, which YAML spells ``null``."""

    _instance: ClassVar[_Unset | None] = None

    def __new__(cls) -> _Unset:
        # A singleton that survives pickling, so ``got is UNSET`` holds in worker processes.
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


def render_value(value: object, limit: int = _MAX_VALUE_CHARS) -> str:
    """Show an input value the way a YAML author would recognise it, cut to ``limit``."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


@dataclass(frozen=True)
class InputProblem:
    """One thing wrong with the input.

    ``line`` and ``col`` are 1-based; ``path`` is the dotted field path
    (``scenario.workload.arrivals.rate``, list items by index). ``got`` is the
    offending value, or :data:`UNSET` when there is none to show (a missing
    field); ``got=None`` means the input held ``null``.
    """

    file: str | None
    line: int | None
    col: int | None
    path: str
    message: str
    got: object = UNSET

    def __str__(self) -> str:
        place = ":".join(str(part) for part in (self.file, self.line, self.col) if part is not None)
        text = self.message
        if self.got is not UNSET:
            text = f"{text} (got {render_value(self.got)})"
        return ": ".join(part for part in (place, self.path, text) if part)


class KossimInputError(Exception):
    """The input is invalid; ``str()`` gives one ``file:line:col: path: message`` line each."""

    exit_code: ClassVar[int] = 2

    def __init__(self, problems: Sequence[InputProblem]) -> None:
        if not problems:
            raise ValueError("KossimInputError needs at least one problem")
        # Problems are the only argument, so the error pickles across processes.
        super().__init__(tuple(problems))
        self.problems: list[InputProblem] = list(problems)

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)

    @classmethod
    def single(
        cls,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        col: int | None = None,
        path: str = "",
        got: object = UNSET,
    ) -> KossimInputError:
        """An error with one problem."""
        return cls([InputProblem(file, line, col, path, message, got)])


class FieldError(ValueError):
    """A model check's complaint about a field below the model, reported at that field.

    A ``ValueError`` from a model validator is placed at the model itself;
    ``raise FieldError("needs skills ...", "workload", "tasks", 0, "skills")``
    in a ``Scenario`` check is placed at ``scenario.workload.tasks.0.skills``
    instead (at the nearest existing part when the field is absent). ``got`` is
    the value to show, if any.
    """

    def __init__(self, message: str, *at: str | int, got: object = UNSET) -> None:
        super().__init__(message, *at)
        self.message = message
        self.at: tuple[str | int, ...] = at
        self.got = got

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, *self.at), {"got": self.got})

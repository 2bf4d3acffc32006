"""Reading YAML with source positions: plain data plus a :class:`SourceMap`.

:func:`load_yaml` returns plain Python data (dicts, lists, scalars: what
pydantic, pickling and hashing expect) together with a :class:`SourceMap` from
field paths to 1-based ``(line, col)``, so that every input error can read
``file:line:col: field.path: message (got VALUE)``.

The rest of the config toolkit lives next door and is re-exported here, so
``from kossim.config.loader import ...`` keeps offering all of it:
:mod:`kossim.config.problems` maps pydantic errors to located problems, and
:mod:`kossim.config.paths` addresses the plain data by dotted paths (sweeps,
``--set``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedKeySeq, CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from kossim.config.paths import (
    DOTTED_KEY_MAPPINGS,
    NAME_KEYS,
    data_path,
    format_path,
    get_path,
    parse_set,
    set_path,
)
from kossim.config.problems import FieldError, FieldsLookup, did_you_mean, validation_problems
from kossim.errors import UNSET, InputProblem, KossimInputError

__all__ = [
    "DOTTED_KEY_MAPPINGS",
    "NAME_KEYS",
    "DataPath",
    "FieldError",
    "FieldsLookup",
    "Origin",
    "SourceMap",
    "data_path",
    "did_you_mean",
    "format_path",
    "get_path",
    "load_yaml",
    "load_yaml_text",
    "parse_set",
    "set_path",
    "validation_problems",
]

DataPath = tuple[str | int, ...]
Position = tuple[int, int]
Origin = DataPath | str
"""Where a value came from: a path in the same document, or a name such as ``"--set"``."""
_DUPLICATE_KEY = re.compile(r'found duplicate key "(?P<key>.*)" with value')


@dataclass(frozen=True)
class SourceMap:
    """Where each mapping key and sequence item of a YAML document sits (1-based).

    ``origins`` reattributes the values that did not come from the document
    as loaded: see :meth:`with_origin`.
    """

    file: str | None = None
    positions: Mapping[DataPath, Position] = field(default_factory=dict)
    origins: Mapping[DataPath, Origin] = field(default_factory=dict)

    def __contains__(self, path: object) -> bool:
        return path in self.positions

    def locate(self, path: Sequence[str | int]) -> Position | None:
        """Position of the deepest prefix of ``path`` present in the document.

        A missing field is thereby reported at the mapping that should hold it.
        """
        for end in range(len(path), -1, -1):
            position = self.positions.get(tuple(path[:end]))
            if position is not None:
                return position
        return None

    def with_origin(self, path: Sequence[str | int], origin: Origin) -> SourceMap:
        """A copy in which problems at or below ``path`` are reported where its value came from.

        ``origin`` is another place in this document (the sweep entry a swept
        value was taken from) or a name standing for the whole origin
        (``"--set"``), then shown instead of ``file:line:col``.
        """
        return replace(self, origins={**self.origins, tuple(path): origin})

    def problem(self, path: Sequence[str | int], message: str, got: object = UNSET) -> InputProblem:
        """An :class:`InputProblem` located at ``path`` in this document (or its origin)."""
        origin = self._origin_of(path)
        if isinstance(origin, str):
            return InputProblem(origin, None, None, format_path(path), message, got)
        line, col = self.locate(path if origin is None else origin) or (None, None)
        return InputProblem(self.file, line, col, format_path(path), message, got)

    def _origin_of(self, path: Sequence[str | int]) -> Origin | None:
        for end in range(len(path), 0, -1):  # the deepest reattributed prefix wins
            origin = self.origins.get(tuple(path[:end]))
            if origin is not None:
                return origin
        return None


# --- loading -------------------------------------------------------------------------------


def load_yaml(path: Path) -> tuple[Any, SourceMap]:
    """Read a YAML file into plain data and its source map; errors name the file."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KossimInputError.single("file not found", file=name) from None
    except IsADirectoryError:
        raise KossimInputError.single("is a directory, not a YAML file", file=name) from None
    except UnicodeDecodeError as exc:
        raise KossimInputError.single(f"not UTF-8 text ({exc.reason})", file=name) from None
    except OSError as exc:
        raise KossimInputError.single(f"cannot read: {exc.strerror}", file=name) from None
    return load_yaml_text(text, name)


def load_yaml_text(text: str, filename: str = "<string>") -> tuple[Any, SourceMap]:
    """Parse YAML ``text`` as if read from ``filename``."""
    try:
        node = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, filename) from None
    except YAMLError as exc:
        raise KossimInputError.single(f"invalid YAML: {exc}", file=filename) from None
    converter = _Converter(filename)
    lc = getattr(node, "lc", None)
    converter.positions[()] = (lc.line + 1, lc.col + 1) if lc is not None else (1, 1)
    data = converter.convert(node, ())
    return data, SourceMap(filename, converter.positions)


def _syntax_error(exc: MarkedYAMLError, filename: str) -> KossimInputError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    problem = str(exc.problem or exc.context or "syntax error")
    start = exc.context_mark
    starts_at = f"{start.line + 1}:{start.column + 1}" if start is not None else None
    match = _DUPLICATE_KEY.search(problem)
    if isinstance(exc, DuplicateKeyError) and match:
        message = f"duplicate key {match['key']!r}"
        if starts_at:
            message += f" (in the mapping that starts at {starts_at})"
    else:
        message = f"invalid YAML: {problem}"
        if exc.problem and exc.context:
            where = f" that starts at {starts_at}" if starts_at and start is not mark else ""
            message += f" ({exc.context}{where})"
    return KossimInputError.single(message, file=filename, line=line, col=col)


class _Converter:
    """Round-trip YAML nodes -> plain data, recording each key's and item's position."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[DataPath, Position] = {}
        self._open: set[int] = set()  # containers being converted (to catch recursive aliases)

    def convert(self, node: Any, path: DataPath) -> Any:
        if isinstance(node, CommentedMap | CommentedSeq):
            if id(node) in self._open:
                raise KossimInputError([self._source().problem(path, "recursive YAML alias")])
            self._open.add(id(node))
            try:
                if isinstance(node, CommentedMap):
                    return self._mapping(node, path)
                return self._sequence(node, path)
            finally:
                self._open.discard(id(node))
        return _plain_scalar(node)

    def _source(self) -> SourceMap:
        return SourceMap(self.file, self.positions)

    def _mapping(self, node: CommentedMap, path: DataPath) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, value in node.items():
            plain_key = _plain_key(key)
            child = (*path, plain_key)
            try:
                line, col = node.lc.key(key)
                self.positions[child] = (line + 1, col + 1)
            except KeyError:  # merged in by `<<:`; report it where the merge happens
                self.positions[child] = self.positions[path]
            out[plain_key] = self.convert(value, child)
        return out

    def _sequence(self, node: CommentedSeq, path: DataPath) -> list[Any]:
        out: list[Any] = []
        for index, value in enumerate(node):
            child = (*path, index)
            line, col = node.lc.item(index)
            self.positions[child] = (line + 1, col + 1)
            out.append(self.convert(value, child))
        return out


def _plain_scalar(value: Any) -> Any:
    # ruamel keeps formatting in subclasses (ScalarFloat, HexInt, LiteralScalarString...).
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, TaggedScalar):
        return value.value
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value)
    return value


def _plain_key(key: Any) -> Any:
    if isinstance(key, CommentedKeySeq):
        return tuple(_plain_key(item) for item in key)
    return _plain_scalar(key)

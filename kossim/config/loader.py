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

import datetime
import math
import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import (
    CommentedKeySeq,
    CommentedMap,
    CommentedOrderedMap,
    CommentedSeq,
    TaggedScalar,
)
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

from kossim.config.limits import YamlLimits
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
_CORE_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = frozenset(
    _CORE_TAG + t for t in ("str", "int", "float", "bool", "null", "map", "seq")
)
"""Explicit tags that only restate a plain type; any other tag is refused."""


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
    limits = YamlLimits.from_env()
    try:
        with Path(path).open("rb") as handle:  # bounded: a device or pipe may never end
            raw = handle.read(limits.max_bytes + 1)
        if len(raw) > limits.max_bytes:
            size = max(Path(path).stat().st_size, len(raw))
            raise _too_large(size, name, limits, at_least=size == len(raw))
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise KossimInputError.single("file not found", file=name) from None
    except IsADirectoryError:
        raise KossimInputError.single("is a directory, not a YAML file", file=name) from None
    except UnicodeDecodeError as exc:
        raise KossimInputError.single(f"not UTF-8 text ({exc.reason})", file=name) from None
    except OSError as exc:
        raise KossimInputError.single(f"cannot read: {exc.strerror}", file=name) from None
    return load_yaml_text(text, name)


def load_yaml_text(
    text: str, filename: str = "<string>", limits: YamlLimits | None = None
) -> tuple[Any, SourceMap]:
    """Parse YAML ``text`` as if read from ``filename``, within ``limits`` (default: the
    environment's, see :class:`~kossim.config.limits.YamlLimits`)."""
    limits = limits or YamlLimits.from_env()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise _too_large(size, filename, limits)
    if text.count("[") + text.count("{") > limits.max_depth:
        # The parser's cost grows with the square of flow nesting: 2000 brackets take
        # seconds, a megabyte of them hours. Stop at the limit before loading.
        _check_flow_depth(text, filename, limits)
    try:
        node = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, filename) from None
    except YAMLError as exc:
        raise KossimInputError.single(f"invalid YAML: {exc}", file=filename) from None
    except RecursionError:
        raise _too_deep(text, filename, limits) from None
    converter = _Converter(filename, limits)
    lc = getattr(node, "lc", None)
    line, col = getattr(lc, "line", None), getattr(lc, "col", None)
    converter.positions[()] = (
        (line + 1, col + 1) if line is not None and col is not None else (1, 1)
    )
    data = converter.convert(node, ())
    return data, SourceMap(filename, converter.positions)


def _too_large(
    size: int, filename: str, limits: YamlLimits, at_least: bool = False
) -> KossimInputError:
    amount = f"more than {limits.max_bytes}" if at_least else str(size)
    return KossimInputError.single(
        f"the document is {amount} bytes, too large to read {limits.hint('max_bytes')}",
        file=filename,
    )


def _check_flow_depth(text: str, filename: str, limits: YamlLimits) -> None:
    """Raise where the nesting passes the limit; a syntax error is left to the loader."""
    try:
        error = _too_deep(text, filename, limits)
    except YAMLError:
        return
    if error.problems[0].message.startswith("nested deeper"):
        raise error


def _too_deep(text: str, filename: str, limits: YamlLimits) -> KossimInputError:
    """Where the nesting passes the limit (or, when the limit was raised beyond what the
    parser's stack allows, where it is deepest); the event stream is read without recursion."""
    depth, deepest, where = 0, 0, None
    for event in YAML(typ="rt").parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > deepest:
                deepest, where = depth, event.start_mark
            if depth > limits.max_depth + 1:  # the converter's depth excludes the innermost
                break
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
    line, col = (where.line + 1, where.column + 1) if where is not None else (None, None)
    if deepest > limits.max_depth + 1:
        message = f"nested deeper than {limits.max_depth} levels {limits.hint('max_depth')}"
    else:
        message = f"nested {deepest} levels deep, more than the YAML parser can follow"
    return KossimInputError.single(message, file=filename, line=line, col=col)


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

    def __init__(self, file: str, limits: YamlLimits) -> None:
        self.file = file
        self.limits = limits
        self.positions: dict[DataPath, Position] = {}
        self._open: set[int] = set()  # containers being converted (to catch recursive aliases)
        self._values = 0  # after alias expansion: an alias is counted at each use

    def _fail(self, path: DataPath, message: str, got: object = UNSET) -> KossimInputError:
        return KossimInputError([self._source().problem(path, message, got)])

    def convert(self, node: Any, path: DataPath) -> Any:
        self._values += 1
        if self._values > self.limits.max_values:
            raise self._fail(
                path,
                f"more than {self.limits.max_values} values once aliases are expanded "
                f"{self.limits.hint('max_values')}",
            )
        if len(path) > self.limits.max_depth:
            raise self._fail(
                path,
                f"nested deeper than {self.limits.max_depth} levels "
                f"{self.limits.hint('max_depth')}",
            )
        tag = getattr(getattr(node, "tag", None), "value", None)
        if tag is not None and tag not in _PLAIN_TAGS:
            shown = "!!" + tag[len(_CORE_TAG) :] if tag.startswith(_CORE_TAG) else tag
            raise self._fail(
                path,
                f"YAML tag {shown} is not allowed: experiment files hold plain mappings, "
                "lists, strings, numbers, booleans and null",
            )
        if isinstance(node, CommentedOrderedMap):
            raise self._fail(path, "an ordered map (!!omap) is not allowed; use a mapping")
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
        value = _plain_scalar(node)
        if isinstance(value, float) and not math.isfinite(value):
            raise self._fail(path, "must be a finite number", value)
        if not (value is None or isinstance(value, str | int | float)):
            raise self._fail(path, _unsupported(value), UNSET)
        return value

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


def _unsupported(value: Any) -> str:
    """Why a value YAML can express is not plain data, and what to write instead."""
    if isinstance(value, datetime.date):
        return "a date or time is not allowed here; quote it to use it as text"
    if isinstance(value, bytes):
        return "binary data (!!binary) is not allowed"
    if isinstance(value, AbstractSet):
        return "a set (!!set) is not allowed; use a list"
    return f"a YAML value of type {type(value).__name__} is not allowed"


def _plain_key(key: Any) -> Any:
    if isinstance(key, CommentedKeySeq):
        return tuple(_plain_key(item) for item in key)
    return _plain_scalar(key)

"""Reading YAML with source positions, and turning validation errors into located problems.

:func:`load_yaml` returns plain Python data (dicts, lists, scalars: what
pydantic, pickling and hashing expect) together with a :class:`SourceMap` from
field paths to 1-based ``(line, col)``. :func:`validation_problems` then maps
each pydantic error back to a path in that data, so that every message reads
``file:line:col: field.path: message (got VALUE)``.

:func:`get_path`, :func:`set_path` and :func:`parse_set` address the plain data
by dotted paths, as sweeps and ``--set`` do.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedKeySeq, CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from kossim.errors import UNSET, InputProblem, KossimInputError

__all__ = [
    "DOTTED_KEY_MAPPINGS",
    "NAME_KEYS",
    "DataPath",
    "FieldsLookup",
    "SourceMap",
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
# Given a pydantic ``loc`` of a model, the names of the fields it accepts (or None).
FieldsLookup = Callable[[tuple[str | int, ...]], Sequence[str] | None]

NAME_KEYS: Final = ("name", "group", "type", "id")
"""Keys that name a list item, so a dotted path can say ``policies.pod2`` for an item."""

DOTTED_KEY_MAPPINGS: Final = frozenset({("sweep",)})
"""Mappings whose keys are themselves dotted paths: the rest of a path is one key there."""

_DUPLICATE_KEY = re.compile(r'found duplicate key "(?P<key>.*)" with value')
_QUOTED = re.compile(r"'([^']*)'")


@dataclass(frozen=True)
class SourceMap:
    """Where each mapping key and sequence item of a YAML document sits (1-based)."""

    file: str | None = None
    positions: Mapping[DataPath, Position] = field(default_factory=dict)

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

    def problem(self, path: Sequence[str | int], message: str, got: object = UNSET) -> InputProblem:
        """An :class:`InputProblem` located at ``path`` in this document."""
        line, col = self.locate(path) or (None, None)
        return InputProblem(self.file, line, col, format_path(path), message, got)


def format_path(path: Iterable[str | int]) -> str:
    """``("policies", 2, "routing")`` -> ``"policies.2.routing"``."""
    return ".".join(str(part) for part in path)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'power_of_d'?)"`` for a near miss among ``choices``, else ``""``."""
    matches = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


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


# --- pydantic errors -> located problems ---------------------------------------------------


@dataclass
class _Located:
    path: DataPath
    message: str
    got: object
    branch: tuple[tuple[Any, ...], str] | None  # (loc before a union member label, label)
    depth: int  # data segments below the union member label


def validation_problems(
    exc: ValidationError,
    source: SourceMap,
    file: str | None = None,
    *,
    data: Any = UNSET,
    model: type | None = None,
    allowed_fields: FieldsLookup | None = None,
    prefix: DataPath = (),
) -> list[InputProblem]:
    """One located problem per pydantic error (union noise pruned, duplicates merged).

    ``data`` is what was validated (as a whole document; ``prefix`` says where
    the validated part sits in it); without it the source map stands in for
    the data, which misses keys added after loading (``--set``). ``model`` (the
    validated pydantic model class) or ``allowed_fields`` lets an unknown field
    list the allowed names.
    """
    if data is not UNSET:
        root = data

        def exists(path: DataPath) -> bool:
            return _exists(root, path)
    else:

        def exists(path: DataPath) -> bool:
            return path in source

    def fields(loc: tuple[str | int, ...]) -> Sequence[str] | None:
        if allowed_fields is not None:
            return allowed_fields(loc)
        return _allowed_fields_of(model, loc) if model is not None else None

    located = [_locate_error(err, exists, prefix, fields, model) for err in exc.errors()]
    where = SourceMap(file if file is not None else source.file, source.positions)
    problems: list[InputProblem] = []
    for item in _merge_union_branches(_drop_shallow_branches(located)):
        problem = where.problem(item.path, item.message, item.got)
        if problem not in problems:
            problems.append(problem)
    return problems


def _exists(root: Any, path: DataPath) -> bool:
    node = root
    for part in path:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_list or (isinstance(node, dict) and part in node)):
            return False
        node = node[part]
    return True


def _locate_error(
    err: Any,
    exists: Callable[[DataPath], bool],
    prefix: DataPath,
    fields: Callable[[tuple[str | int, ...]], Sequence[str] | None],
    model: type | None,
) -> _Located:
    loc: tuple[str | int, ...] = tuple(err["loc"])
    path, branch, split = prefix, None, len(prefix)
    for index, part in enumerate(loc):
        if exists((*path, part)):
            path = (*path, part)
        elif err["type"] == "missing" and index == len(loc) - 1:
            path = (*path, part)  # the missing field itself
        elif branch is None:  # a union member label or tag: not in the data
            branch, split = (loc[:index], str(part)), len(path)
    extra, message, got = _describe(err, loc, fields, model)
    path = (*path, *extra)
    return _Located(path, message, got, branch, len(path) - split if branch else 0)


def _describe(
    err: Any,
    loc: tuple[str | int, ...],
    fields: Callable[[tuple[str | int, ...]], Sequence[str] | None],
    model: type | None,
) -> tuple[DataPath, str, object]:
    """(path segments to add, message, got) for one pydantic error."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input", UNSET)
    if kind == "missing":
        return (), "Field required", UNSET
    if kind == "extra_forbidden":
        name, allowed = str(loc[-1]), fields(loc[:-1])
        if not allowed:
            return (), f"unknown field {name!r}", UNSET
        hint = did_you_mean(name, allowed)
        return (), f"unknown field {name!r}; allowed: {', '.join(allowed)}{hint}", UNSET
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _describe_tag(kind, ctx, value, loc, model)
    message = str(err["msg"])
    if kind in ("literal_error", "enum") and isinstance(value, str):
        message += did_you_mean(value, _QUOTED.findall(str(ctx.get("expected", ""))))
    if kind in ("value_error", "assertion_error"):
        message = message.split(", ", 1)[1] if ", " in message else message
        if isinstance(value, dict | list):  # a model-level check: the whole input is noise
            value = UNSET
    return (), message, value


def _describe_tag(
    kind: str, ctx: Mapping[str, Any], value: object, loc: tuple[str | int, ...], model: type | None
) -> tuple[DataPath, str, object]:
    key = _QUOTED.fullmatch(str(ctx.get("discriminator", "")))
    extra: DataPath = (key[1],) if key else ()
    if kind == "union_tag_invalid":
        expected = str(ctx.get("expected_tags", ""))
        tag = ctx.get("tag", UNSET)
        hint = did_you_mean(str(tag), _QUOTED.findall(expected))
        return extra, f"Input should be one of {expected}{hint}", tag
    tags = _union_tags_of(model, loc, key[1]) if model is not None and key else None
    known = f"; expected one of {', '.join(repr(t) for t in tags)}" if tags else ""
    return extra, f"Field required{known}", UNSET


def _drop_shallow_branches(items: list[_Located]) -> list[_Located]:
    """Drop "not this union member" errors when another member got further into the input.

    For ``routing: str | Spec`` and ``routing: {id: 3}``, the complaint that a
    mapping is not a string only hides the real one about ``id``.
    """
    deep: dict[tuple[Any, ...], set[str]] = {}
    for item in items:
        if item.branch is not None and item.depth > 0:
            deep.setdefault(item.branch[0], set()).add(item.branch[1])
    return [
        item
        for item in items
        if item.branch is None
        or item.depth > 0
        or not deep.get(item.branch[0], set()) - {item.branch[1]}
    ]


def _merge_union_branches(items: list[_Located]) -> list[_Located]:
    """Join the complaints of each union member about one value: ``A; or B``."""
    merged: list[_Located] = []
    groups: dict[tuple[DataPath, tuple[Any, ...]], _Located] = {}
    for item in items:
        if item.branch is None or item.depth > 0:
            merged.append(item)
            continue
        group = (item.path, item.branch[0])
        if group in groups:
            first = groups[group]
            if item.message not in first.message.split("; or "):
                first.message = f"{first.message}; or {item.message}"
            continue
        groups[group] = item
        merged.append(item)
    return merged


# --- which fields a model accepts at a pydantic loc ----------------------------------------


def _allowed_fields_of(model: type, loc: tuple[str | int, ...]) -> list[str] | None:
    target = _type_at(model, loc)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return [info.alias or name for name, info in target.model_fields.items()]
    return None


def _union_tags_of(model: type, loc: tuple[str | int, ...], key: str) -> list[str] | None:
    tags: list[str] = []
    for member in _union_members(_type_at(model, loc)):
        member = _strip(member)
        info = member.model_fields.get(key) if _is_model(member) else None
        if info is not None and get_origin(info.annotation) is Literal:
            tags.extend(str(arg) for arg in get_args(info.annotation))
    return tags or None


def _type_at(tp: Any, loc: tuple[str | int, ...]) -> Any:
    """The annotation a pydantic ``loc`` leads to (union member labels pick the member)."""
    for part in loc:
        tp = _strip(tp)
        if _is_model(tp):
            tp = next(
                (i.annotation for n, i in tp.model_fields.items() if part in (n, i.alias)), None
            )
        elif members := _union_members(tp):
            tp = next((m for m in members if part in _member_labels(m)), None)
        elif get_origin(tp) in (list, tuple, set, frozenset, Sequence) and get_args(tp):
            tp = get_args(tp)[0]
        elif get_origin(tp) in (dict, Mapping) and len(get_args(tp)) == 2:
            tp = get_args(tp)[1]
        else:
            return None
        if tp is None:
            return None
    return _strip(tp)


def _strip(tp: Any) -> Any:
    """Unwrap ``Annotated[X, ...]`` and ``X | None`` (pydantic adds no loc segment for them)."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif len(members := _union_members(tp)) == 1 and type(None) in get_args(tp):
            tp = members[0]
        else:
            return tp


def _union_members(tp: Any) -> list[Any]:
    if get_origin(tp) in (Union, types.UnionType):
        return [arg for arg in get_args(tp) if arg is not type(None)]
    return []


def _member_labels(member: Any) -> set[str]:
    """Names pydantic may use for a union member in a loc: tag, class name, literal values."""
    labels = {str(getattr(m, "tag", "")) for m in getattr(member, "__metadata__", ())}
    inner = _strip(member)
    labels.add(str(getattr(inner, "__name__", "")))
    if _is_model(inner):
        for info in inner.model_fields.values():
            if get_origin(info.annotation) is Literal:
                labels.update(str(arg) for arg in get_args(info.annotation))
    return labels - {""}


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


# --- dotted paths into plain data ----------------------------------------------------------


def get_path(data: Any, dotted: str) -> Any:
    """The value at ``dotted`` (list items by index or by name; see :data:`NAME_KEYS`)."""
    parts, node, index = _split(dotted), data, 0
    walked: list[str] = []
    while index < len(parts):
        part, index = _take(parts, index, walked, node)
        if isinstance(node, str):  # a component given by bare id
            node = {"id": node}
        if isinstance(node, dict):
            if part not in node:
                raise _unknown(walked, part, "field", [str(k) for k in node])
            node = node[part]
        elif isinstance(node, list):
            node = node[_list_index(node, part, walked)]
        else:
            raise _cannot_enter(walked, node)
        walked.append(part)
    return node


def set_path(data: Any, dotted: str, value: Any) -> None:
    """Set ``dotted`` to ``value`` in place, creating missing mappings on the way.

    A component given by bare id (``routing: power_of_d``) becomes
    ``{id: power_of_d, ...}`` when the path goes into it.
    """
    parts, node, index = _split(dotted), data, 0
    walked: list[str] = []
    while True:
        part, index = _take(parts, index, walked, node)
        key: str | int
        if isinstance(node, dict):
            key = part
        elif isinstance(node, list):
            key = _list_index(node, part, walked)
        else:
            raise _cannot_enter(walked, node)
        if index == len(parts):
            node[key] = value
            return
        child = node.get(key) if isinstance(node, dict) else node[key]
        if child is None or isinstance(child, str):
            child = {} if child is None else {"id": child}
            node[key] = child
        node, walked = child, [*walked, part]


def parse_set(expr: str) -> tuple[str, Any]:
    """``"a.b=[1, 2]"`` -> ``("a.b", [1, 2])``: the value is read as YAML."""
    path, sep, text = expr.partition("=")
    path = path.strip()
    if not sep or not path:
        raise KossimInputError.single("--set expects PATH=VALUE", got=expr)
    _split(path)
    try:
        value, _ = load_yaml_text(text, "--set")
    except KossimInputError as exc:
        message = f"cannot read the value as YAML: {exc.problems[0].message}"
        raise KossimInputError.single(message, path=path, got=text) from None
    return path, value


def _split(dotted: str) -> list[str]:
    parts = dotted.split(".")
    if not all(parts):
        raise KossimInputError.single("not a dotted path", got=dotted)
    return parts


def _take(parts: list[str], index: int, walked: list[str], node: Any) -> tuple[str, int]:
    """The next key, and where the rest starts (a dotted-key mapping takes all the rest)."""
    if isinstance(node, dict) and tuple(walked) in DOTTED_KEY_MAPPINGS:
        return ".".join(parts[index:]), len(parts)
    return parts[index], index + 1


def _list_index(items: list[Any], part: str, walked: list[str]) -> int:
    if re.fullmatch(r"-?\d+", part):
        index = int(part)
        if -len(items) <= index < len(items):
            return index % len(items)
        raise KossimInputError.single(
            f"index {index} is out of range ({len(items)} items)", path=format_path(walked)
        )
    for index, item in enumerate(items):
        if isinstance(item, dict) and any(item.get(key) == part for key in NAME_KEYS):
            return index
    raise _unknown(walked, part, "item", [_item_name(i, item) for i, item in enumerate(items)])


def _item_name(index: int, item: Any) -> str:
    if isinstance(item, dict):
        for key in NAME_KEYS:
            if isinstance(item.get(key), str):
                return str(item[key])
    return str(index)


def _unknown(walked: list[str], part: str, what: str, names: list[str]) -> KossimInputError:
    available = ", ".join(names) if names else "none"
    return KossimInputError.single(
        f"no {what} {part!r}; available: {available}{did_you_mean(part, names)}",
        path=format_path([*walked, part]),
    )


def _cannot_enter(walked: list[str], node: Any) -> KossimInputError:
    return KossimInputError.single("not a mapping or list", path=format_path(walked), got=node)

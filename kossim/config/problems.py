"""Turning pydantic validation errors into located input problems, with hints.

:func:`validation_problems` maps each pydantic error back to a path in the
validated plain data, prunes the noise of union members that did not match,
and words the message for a YAML author: an unknown field lists the allowed
names, a bad tag or literal lists the allowed values, and a near miss gets a
"did you mean". The walker at the end finds, for a pydantic ``loc``, the
annotation it leads to in the model tree (for the allowed names and tags).
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from kossim.errors import UNSET, FieldError, InputProblem

if TYPE_CHECKING:  # loader re-exports this module, so it is imported for types only
    from kossim.config.loader import DataPath, SourceMap

__all__ = ["FieldError", "FieldsLookup", "did_you_mean", "validation_problems"]

# Given a pydantic ``loc`` of a model, the names of the fields it accepts (or None).
FieldsLookup = Callable[[tuple[str | int, ...]], Sequence[str] | None]

_QUOTED = re.compile(r"'([^']*)'")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'power_of_d'?)"`` for a near miss among ``choices``, else ``""``."""
    matches = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


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
    where = source if file is None else replace(source, file=file)
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
    if isinstance(ctx.get("error"), FieldError):
        return ctx["error"].at, ctx["error"].message, ctx["error"].got
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

"""Dotted paths into plain experiment data, as sweeps and ``--set`` use them.

``scenario.workload.arrivals.rate`` walks mappings by key and lists by index
or by an item's name (``policies.pod2``, see :data:`NAME_KEYS`). Under
``sweep`` the rest of a path is one key, since sweep keys are paths themselves.
Every miss is a :class:`~kossim.errors.KossimInputError` naming what exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from kossim.config.problems import did_you_mean
from kossim.errors import KossimInputError

__all__ = [
    "DOTTED_KEY_MAPPINGS",
    "NAME_KEYS",
    "data_path",
    "format_path",
    "get_path",
    "parse_set",
    "set_path",
]

NAME_KEYS: Final = ("name", "group", "type", "id")
"""Keys that name a list item, so a dotted path can say ``policies.pod2`` for an item."""

DOTTED_KEY_MAPPINGS: Final = frozenset({("sweep",)})
"""Mappings whose keys are themselves dotted paths: the rest of a path is one key there."""


def format_path(path: Iterable[str | int]) -> str:
    """``("policies", 2, "routing")`` -> ``"policies.2.routing"``."""
    return ".".join(str(part) for part in path)


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


def set_path(data: Any, dotted: str, value: Any) -> tuple[str | int, ...]:
    """Set ``dotted`` to ``value`` in place, creating missing mappings on the way.

    A component given by bare id (``routing: power_of_d``) becomes
    ``{id: power_of_d, ...}`` when the path goes into it. Returns the data path
    (list items by index) of what is new: the first mapping created, else the
    value set, so that problems there can be traced to whoever set it.
    """
    parts, node, index = _split(dotted), data, 0
    walked: list[str] = []
    resolved: list[str | int] = []
    new_at: int | None = None
    while True:
        part, index = _take(parts, index, walked, node)
        key: str | int
        if isinstance(node, dict):
            key = part
        elif isinstance(node, list):
            key = _list_index(node, part, walked)
        else:
            raise _cannot_enter(walked, node)
        resolved.append(key)
        if index == len(parts):
            node[key] = value
            return tuple(resolved if new_at is None else resolved[:new_at])
        child = node.get(key) if isinstance(node, dict) else node[key]
        if child is None and new_at is None:
            new_at = len(resolved)
        if child is None or isinstance(child, str):
            child = {} if child is None else {"id": child}
            node[key] = child
        node, walked = child, [*walked, part]


def data_path(data: Any, dotted: str) -> tuple[str | int, ...]:
    """The data path ``dotted`` leads to (list items by index), without changing ``data``.

    Two spellings of one place (``policies.pod2.queue`` and ``policies.1.queue``)
    give the same data path; keys not in ``data`` yet are taken as written, as
    :func:`set_path` would create them.
    """
    parts, node, index = _split(dotted), data, 0
    walked: list[str] = []
    resolved: list[str | int] = []
    while index < len(parts):
        part, index = _take(parts, index, walked, node)
        if isinstance(node, str):  # a component given by bare id
            node = {"id": node}
        if isinstance(node, list):
            position = _list_index(node, part, walked)
            resolved.append(position)
            node = node[position]
        elif isinstance(node, dict) or node is None:
            resolved.append(part)
            node = node.get(part) if isinstance(node, dict) else None
        else:
            raise _cannot_enter(walked, node)
        walked.append(part)
    return tuple(resolved)


def parse_set(expr: str) -> tuple[str, Any]:
    """``"a.b=[1, 2]"`` -> ``("a.b", [1, 2])``: the value is read as YAML."""
    path, sep, text = expr.partition("=")
    path = path.strip()
    if not sep or not path:
        raise KossimInputError.single("--set expects PATH=VALUE", got=expr)
    _split(path)
    from kossim.config.loader import load_yaml_text  # loader re-exports this module

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

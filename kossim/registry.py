"""Registry of policy components, by kind and id.

Ids come from three places: the built-ins in :mod:`policies` (registered when
that package is imported), ``module:Class`` references for user code, and
plugins in the entry-point group ``kossim.policies`` (each entry point names a
module whose import registers components, or a component class).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import numpy as np
from pydantic import ValidationError

from kossim.errors import FieldError
from kossim.policy import Component

__all__ = ["KINDS", "ComponentSpec", "available", "build", "register", "resolve"]

KINDS = ("dispatch", "routing", "queue")
ENTRY_POINT_GROUP = "kossim.policies"

_REGISTRY: dict[str, dict[str, type[Component]]] = {k: {} for k in KINDS}
_loaded = False


@dataclass(frozen=True)
class ComponentSpec:
    """A resolved component: its class and validated parameters."""

    cls: type[Component]
    params: Any

    @property
    def id(self) -> str:
        return self.cls.id


def register(cls: type[Component]) -> type[Component]:
    """Class decorator: make ``cls`` available under ``cls.kind`` / ``cls.id``."""
    if cls.kind not in KINDS:
        raise ValueError(f"unknown component kind {cls.kind!r} (allowed: {list(KINDS)})")
    existing = _REGISTRY[cls.kind].get(cls.id)
    if existing is not None and existing is not cls:
        raise ValueError(f"{cls.kind} id {cls.id!r} is already registered by {existing}")
    _REGISTRY[cls.kind][cls.id] = cls
    return cls


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    importlib.import_module("policies")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, Component):
            register(obj)


def available(kind: str) -> dict[str, type[Component]]:
    """Registered components of ``kind``, by id."""
    _ensure_loaded()
    return dict(_REGISTRY[kind])


def _lookup(kind: str, ident: str) -> type[Component]:
    if ":" in ident:
        module, _, attr = ident.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load {kind} component {ident!r}: {exc}") from None
        except SyntaxError as exc:  # the module's own code is broken: say where
            where = f"{exc.filename}:{exc.lineno}" if exc.filename else module
            raise ValueError(
                f"cannot load {kind} component {ident!r}: syntax error at {where}: {exc.msg}"
            ) from None
        except (Exception, SystemExit) as exc:  # a module that raises while it is imported
            raise ValueError(
                f"cannot load {kind} component {ident!r}: importing {module!r} raised "
                f"{type(exc).__name__}: {_first_line(exc)}"
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, Component) and cls.kind == kind):
            raise ValueError(f"{ident!r} is not a kossim {kind} component")
        return cls
    table = available(kind)
    if ident not in table:
        close = difflib.get_close_matches(ident, table, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown {kind} id {ident!r}{hint}; allowed: {', '.join(sorted(table))}")
    return table[ident]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "(no message)"


def resolve(kind: str, ref: str | dict[str, Any]) -> ComponentSpec:
    """Validate a component reference (``"id"`` or ``{id: ..., **params}``)."""
    if isinstance(ref, str):
        ident, raw = ref, {}
    elif isinstance(ref, dict) and isinstance(ref.get("id"), str):
        raw = {k: v for k, v in ref.items() if k != "id"}
        ident = ref["id"]
    else:
        raise ValueError(f"a {kind} component is an id or a mapping with 'id' (got {ref!r})")
    cls = _lookup(kind, ident)
    try:
        params = cls.Params(**raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        allowed = ", ".join(cls.Params.model_fields) or "none"
        raise FieldError(
            f"{kind} {ident!r}: {first['msg']}; parameters: {allowed}",
            *first["loc"],
            got=first.get("input"),
        ) from None
    except Exception as exc:  # a user component's own checks failing some other way
        raise ValueError(
            f"{kind} {ident!r}: validating its parameters raised {type(exc).__name__}: "
            f"{_first_line(exc)}"
        ) from None
    return ComponentSpec(cls, params)


def build(spec: ComponentSpec, rng: np.random.Generator) -> Any:
    """A fresh component instance for one run."""
    return spec.cls(spec.params, rng)

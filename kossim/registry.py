"""Registry of policy components, by kind and id.

Ids come from three places: the built-ins in :mod:`policies` (registered when
that package is imported), ``module:Class`` references for user code, and
plugins in the entry-point group ``kossim.policies`` (each entry point names a
module whose import registers components, or a component class).

A ``module:Class`` reference is found the way ``python script.py`` finds a
sibling module: in the experiment file's folder first, then in the working
directory, then among installed packages. ``path/to/file.py:Class`` names a
file directly; the loader rewrites references found in a folder to that form
(absolute), so worker processes, whatever their working directory, load the
same file.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import sys
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.machinery import PathFinder
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from pydantic import ValidationError

from kossim.errors import FieldError
from kossim.policy import Component

__all__ = [
    "KINDS",
    "ComponentSpec",
    "available",
    "build",
    "locate",
    "register",
    "resolve",
    "searching",
]

DECISION_KINDS = ("dispatch", "routing", "queue")
"""Kinds whose components decide from views (what :mod:`kossim.conformance` checks)."""
BEHAVIOUR_KINDS = ("coordinator", "agent", "detector")
"""Kinds whose components are actor behaviours on the kernel."""
KINDS = DECISION_KINDS + BEHAVIOUR_KINDS
"""The built-in kinds. Kinds are open: registering a component of a new kind adds it."""
ENTRY_POINT_GROUP = "kossim.policies"

_REGISTRY: dict[str, dict[str, type[Component]]] = {k: {} for k in KINDS}
FUNCTION_KINDS = {"arbiter": "policies.arbiter:function_arbiter"}
"""Kinds whose ``module:function`` references may name a plain function: the adapter (a
``module:function`` itself, ``(fn, ident) -> component class``) that makes it a component."""
_loaded = False
_search: ContextVar[tuple[Path, ...]] = ContextVar("kossim_component_search", default=())


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
    if not (isinstance(cls.kind, str) and cls.kind.isidentifier()):
        raise ValueError(f"a component kind is a snake_case name (got {cls.kind!r})")
    existing = _REGISTRY.setdefault(cls.kind, {}).get(cls.id)
    if existing is not None and existing is not cls:
        raise ValueError(f"{cls.kind} id {cls.id!r} is already registered by {existing}")
    _REGISTRY[cls.kind][cls.id] = cls
    return cls


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for cls in builtin_components():
        register(cls)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, Component):
            register(obj)


def builtin_components() -> list[type[Component]]:
    """The components of :mod:`policies`: each class that sets an ``id`` of its own in one
    of its modules, in module and definition order."""
    package = importlib.import_module("policies")
    found: list[type[Component]] = []
    for name in package.__all__:
        module = importlib.import_module(f"policies.{name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Component)
                and obj.__module__ == module.__name__
                and "id" in vars(obj)
            ):
                found.append(obj)
    return found


def registered_kinds() -> list[str]:
    """Every kind with a registered component: the built-in kinds, then any others."""
    _ensure_loaded()
    return [*KINDS, *sorted(k for k in _REGISTRY if k not in KINDS and _REGISTRY[k])]


def available(kind: str) -> dict[str, type[Component]]:
    """Registered components of ``kind``, by id."""
    _ensure_loaded()
    return dict(_REGISTRY.get(kind, {}))


@contextlib.contextmanager
def searching(*folders: Path) -> Iterator[None]:
    """Look for ``module:Class`` modules in ``folders`` (then the working directory)."""
    token = _search.set(tuple(Path(f).resolve() for f in folders))
    try:
        yield
    finally:
        _search.reset(token)


def _folders(extra: Sequence[Path] = ()) -> list[Path]:
    """Where user modules are looked for, in order: ``extra``, the context's, the cwd."""
    out: list[Path] = []
    for folder in [*extra, *_search.get(), Path.cwd()]:
        folder = Path(folder).resolve()
        if folder not in out:
            out.append(folder)
    return out


def _package_root(file: Path) -> tuple[Path, str]:
    """The folder to import ``file`` from, and its dotted module name (packages walked up)."""
    names = [file.stem] if file.name != "__init__.py" else []
    folder = file.parent
    while (folder / "__init__.py").is_file():
        names.insert(0, folder.name)
        folder = folder.parent
    return folder, ".".join(names)


def _import_from(folder: Path, module: str) -> ModuleType:
    """Import ``module`` with ``folder`` first on ``sys.path`` for the import alone."""
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(module)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def _source(module: str, folders: Sequence[Path]) -> Path | None:
    """The first folder of ``folders`` holding ``module``'s top-level package or file."""
    top = module.partition(".")[0]
    loaded = sys.modules.get(top)
    if loaded is not None:
        origin = getattr(loaded, "__file__", None)
        if origin is None:
            return None
        root, _ = _package_root(Path(origin))
        return root if root in folders else None
    for folder in folders:
        if PathFinder.find_spec(top, [str(folder)]) is not None:
            return folder
    return None


def _import(module: str) -> ModuleType:
    if module.endswith(".py"):
        file = Path(module).resolve()
        if not file.is_file():
            raise ImportError(f"no file {file}")
        return _import_from(*_package_root(file))
    folders = _folders()
    folder = _source(module, folders)
    if folder is not None:
        return _import_from(folder, module)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        where = ", ".join(str(f) for f in folders)
        raise ImportError(f"{exc} (looked in {where} and the installed packages)") from None


def locate(ident: str, folder: Path) -> str:
    """``ident`` with a module found in ``folder`` or the cwd as an absolute file reference.

    ``"my_policies:Trusted"`` beside the experiment becomes
    ``"/abs/dir/my_policies.py:Trusted"``; ids, file references and installed modules
    come back unchanged, and so does a module found nowhere (resolving it reports why).
    """
    module, sep, attr = ident.partition(":")
    if not sep or module.endswith(".py"):
        return ident
    source = _source(module, _folders([folder]))
    if source is None:
        return ident
    spec = PathFinder.find_spec(module.partition(".")[0], [str(source)])
    parts = module.split(".")
    path = source.joinpath(*parts)
    if (path / "__init__.py").is_file():
        path = path / "__init__.py"
    elif len(parts) == 1 and spec is not None and spec.origin:
        path = Path(spec.origin)
    else:
        path = path.with_suffix(".py")
    if not path.is_file() or _package_root(path) != (source, module):
        return ident  # e.g. a namespace package: the file alone would not import as ``module``
    return f"{path}:{attr}"


def _lookup(kind: str, ident: str) -> type[Component]:
    if ":" in ident:
        module, _, attr = ident.rpartition(":")
        try:
            cls = getattr(_import(module), attr)
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
        if kind in FUNCTION_KINDS and callable(cls) and not isinstance(cls, type):
            adapter_module, _, adapter = FUNCTION_KINDS[kind].partition(":")
            cls = getattr(importlib.import_module(adapter_module), adapter)(cls, ident)
        if not (isinstance(cls, type) and issubclass(cls, Component) and cls.kind == kind):
            plain = " or a plain function" if kind in FUNCTION_KINDS else ""
            raise ValueError(f"{ident!r} is not a kossim {kind} component{plain}")
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

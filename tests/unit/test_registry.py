"""Component ids: built-ins, ``module:Class`` references and entry-point plugins."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from kossim import registry
from kossim.errors import FieldError
from kossim.policy import Component


class Sticky(Component):
    """A plugin router: always the first candidate."""

    kind = "routing"
    id = "test_sticky"
    description = "first candidate"

    def select(self, task: Any, candidates: Any, now: float) -> Any:
        return candidates[0]


class _EntryPoint:
    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def load(self) -> Any:
        return self._obj


def test_entry_point_plugins_are_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A class published in the group ``kossim.policies`` becomes an id like a built-in."""
    # A private copy of the registry, loaded afresh (built-ins are already in it).
    monkeypatch.setattr(registry, "_REGISTRY", {k: registry.available(k) for k in registry.KINDS})
    monkeypatch.setattr(registry, "_loaded", False)

    def fake_entry_points(group: str) -> list[_EntryPoint]:
        assert group == "kossim.policies"
        return [_EntryPoint(Sticky)]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    assert registry.resolve("routing", "test_sticky").cls is Sticky
    assert "jsq" in registry.available("routing")


def test_module_class_reference() -> None:
    """``module:Class`` loads user code; a class of another kind is refused."""
    spec = registry.resolve("routing", {"id": "policies.routing:PowerOfD", "d": 3})
    assert spec.id == "power_of_d" and spec.params.d == 3
    with pytest.raises(ValueError, match="is not a kossim routing component"):
        registry.resolve("routing", "policies.queue:Fcfs")
    with pytest.raises(ValueError, match="cannot load"):
        registry.resolve("routing", "no_such_module:Thing")


def test_unknown_id_suggests_the_nearest() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'least_work'\?"):
        registry.resolve("routing", "least_wrok")


def test_bad_parameter_is_placed_at_the_parameter() -> None:
    with pytest.raises(FieldError) as info:
        registry.resolve("routing", {"id": "power_of_d", "d": 0})
    assert info.value.at == ("d",)
    assert "parameters: d" in info.value.message


ROUTER = """
from kossim.policy import Component


class First(Component):
    kind = "routing"
    id = "test_first_{tag}"
    description = "first candidate"

    def select(self, task, candidates, now):
        return candidates[0]
"""


def test_module_beside_the_experiment_wins_and_becomes_a_file_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The experiment's folder is searched before the working directory; the reference is
    rewritten to the file, which then loads from anywhere; a package keeps its dotted name."""
    (tmp_path / "exp").mkdir()
    (tmp_path / "cwd").mkdir()
    (tmp_path / "exp" / "kossim_test_router.py").write_text(ROUTER.format(tag="exp"))
    (tmp_path / "cwd" / "kossim_test_router.py").write_text(ROUTER.format(tag="cwd"))
    (tmp_path / "exp" / "kossim_test_pkg").mkdir()
    (tmp_path / "exp" / "kossim_test_pkg" / "__init__.py").write_text("")
    (tmp_path / "exp" / "kossim_test_pkg" / "rt.py").write_text(ROUTER.format(tag="pkg"))
    monkeypatch.chdir(tmp_path / "cwd")
    for name in ("kossim_test_router", "kossim_test_pkg", "kossim_test_pkg.rt"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        ref = registry.locate("kossim_test_router:First", tmp_path / "exp")
        assert ref == f"{tmp_path / 'exp' / 'kossim_test_router.py'}:First"
        assert registry.resolve("routing", ref).id == "test_first_exp"
        pkg = registry.locate("kossim_test_pkg.rt:First", tmp_path / "exp")
        assert pkg == f"{tmp_path / 'exp' / 'kossim_test_pkg' / 'rt.py'}:First"
        assert registry.resolve("routing", pkg).cls.__module__ == "kossim_test_pkg.rt"
        assert registry.locate("jsq", tmp_path / "exp") == "jsq"  # ids stay ids
    finally:
        for name in ("kossim_test_router", "kossim_test_pkg", "kossim_test_pkg.rt"):
            sys.modules.pop(name, None)


def test_a_module_found_nowhere_says_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    """The error names the experiment's folder, the working directory and installed packages."""
    where = re.escape(f"looked in {tmp_path / 'exp'}, {tmp_path} and the installed packages")
    with registry.searching(tmp_path / "exp"), pytest.raises(ValueError, match=where):
        registry.resolve("routing", "kossim_no_such_module:Thing")


def test_a_component_whose_parameter_check_raises_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """User code raising something other than a validation error is still a located problem."""
    (tmp_path / "kossim_test_bad_params.py").write_text(
        "from pydantic import field_validator\n"
        "from kossim.policy import Params\n"
        "from policies.routing import Random\n\n\n"
        "class P(Params):\n"
        "    d: int = 1\n\n"
        "    @field_validator('d')\n"
        "    @classmethod\n"
        "    def _boom(cls, v: int) -> int:\n"
        "        raise TypeError('unsupported d')\n\n\n"
        "class Router(Random):\n"
        "    kind = 'routing'\n"
        "    id = 'kossim_test_bad_params'\n"
        "    Params = P\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError) as info:
        registry.resolve("routing", {"id": "kossim_test_bad_params:Router", "d": 2})
    assert str(info.value) == (
        "routing 'kossim_test_bad_params:Router': validating its parameters raised "
        "TypeError: unsupported d"
    )

"""Component ids: built-ins, ``module:Class`` references and entry-point plugins."""

from __future__ import annotations

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

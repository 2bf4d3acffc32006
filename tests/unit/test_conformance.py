"""The conformance check: every registered component passes; broken ones are named."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from kossim.conformance import behaviour_kinds, check, check_component, check_registry
from kossim.conformance_actors import check_behaviour
from kossim.policy import AgentView, Component, TaskView
from kossim.registry import DECISION_KINDS as KINDS
from kossim.registry import available
from tests.plugins import MutatingAgent, RestlessDetector, SetOrderCoordinator

REGISTERED = [(kind, ident) for kind in KINDS for ident in sorted(available(kind))]
BEHAVIOURS = [
    (kind, {"id": ident, **REQUIRED.get(ident, {})})
    for kind in behaviour_kinds()  # every kind but the decision kinds: arbiter, ...
    for ident in sorted(available(kind))
    for REQUIRED in [{"contract_net": {"window": 0.3}}]
]


@pytest.mark.parametrize(("kind", "ident"), REGISTERED, ids=[f"{k}:{i}" for k, i in REGISTERED])
def test_every_registered_component_conforms(kind: str, ident: str) -> None:
    """Same seed, same decisions; inputs untouched; decisions valid."""
    assert check_component(kind, ident, seed=0) == []


@pytest.mark.parametrize(
    ("kind", "ref"),
    [
        ("routing", {"id": "power_of_d", "d": 3}),
        ("queue", {"id": "edf", "preemptive": True}),
        ("routing", "policies.routing:LeastWork"),
    ],
)
def test_parameterised_and_module_references_conform(kind: str, ref: Any) -> None:
    """References with parameters, and ``module:Class`` ones, are checked like ids."""
    assert check_component(kind, ref, seed=3) == []


@pytest.mark.parametrize(("kind", "ref"), BEHAVIOURS, ids=[f"{k}:{r['id']}" for k, r in BEHAVIOURS])
def test_every_registered_behaviour_conforms(kind: str, ref: dict[str, Any]) -> None:
    """Run in the standard worlds: same seed, same log, timers and metrics; no task lost;
    profiles and scenario untouched."""
    assert check_behaviour(kind, ref) == []


def test_check_registry_covers_every_kind() -> None:
    """One entry per registered component (behaviours that need parameters aside), all
    empty."""
    report = check_registry(decisions=20)
    behaviours = {(k, r["id"]) for k, r in BEHAVIOURS if r["id"] != "contract_net"}
    assert set(report) == set(REGISTERED) | behaviours
    assert set(behaviour_kinds()) >= {"coordinator", "agent", "detector"}
    assert not any(report.values())


@pytest.mark.parametrize(
    ("kind", "cls", "complaint"),
    [
        ("coordinator", SetOrderCoordinator, "same seed, different execution logs"),
        ("agent", MutatingAgent, "mutated the agents' profiles or the scenario"),
        ("detector", RestlessDetector, "same seed, different"),
    ],
)
def test_broken_behaviour_is_flagged(kind: str, cls: type, complaint: str) -> None:
    """Nondeterminism and writes outside the context are found by running the behaviour."""
    problems = check(kind, cls)
    assert problems, f"{cls.__name__} passed"
    assert any(complaint in p for p in problems), problems
    assert all(p.startswith(f"{kind} {cls.id!r}: ") for p in problems)  # type: ignore[attr-defined]


# -- deliberately broken components ------------------------------------------------------


class Shortest(Component):
    """A conforming user router: the candidate with the lowest index among the shortest."""

    kind = "routing"
    id = "test_shortest"

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        return min(candidates, key=lambda a: (a.queue_length, a.index))


class SeededRandom(Component):
    """Random from its own stream: conforming."""

    kind = "routing"
    id = "test_seeded_random"

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        return candidates[int(self.rng.integers(len(candidates)))]


class GlobalRandom(Component):
    """Draws from Python's global random state instead of its own stream."""

    kind = "routing"
    id = "test_global_random"

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        return random.choice(list(candidates))


class NumpyGlobalRandom(Component):
    """Draws from numpy's legacy global state."""

    kind = "routing"
    id = "test_numpy_global"

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        return candidates[np.random.randint(len(candidates))]


class ByClock(Component):
    """Decides by the wall clock, which no seed controls.

    (Deciding by object address, ``min(candidates, key=id)``, is as wrong but not
    reliably caught: two builds may allocate their views in the same order.)
    """

    kind = "routing"
    id = "test_by_clock"

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        return candidates[time.perf_counter_ns() // 7 % len(candidates)]


class Bookkeeper(Component):
    """Writes to the view it chooses (the engine's job, not the policy's)."""

    kind = "routing"
    id = "test_bookkeeper"

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        chosen = min(candidates, key=lambda a: a.queue_length)
        chosen.queue_length += 1  # type: ignore[misc]
        return chosen


class Impostor(Component):
    """Returns a stand-in instead of one of the candidates."""

    kind = "routing"
    id = "test_impostor"

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> Any:
        return type("Fake", (), {"index": candidates[0].index})()


class Crashing(Component):
    """Raises on some inputs."""

    kind = "routing"
    id = "test_crashing"

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        if len(candidates) > 6:
            raise RuntimeError("too many candidates")
        return candidates[0]


class Agings(Component):
    """A discipline that edits the task it ranks."""

    kind = "queue"
    id = "test_aging"
    preemptive = False
    fifo = False

    def key(self, task: TaskView) -> Any:
        task.priority = max(0, task.priority - 1)  # type: ignore[misc]
        return task.priority


class MixedKeys(Component):
    """Keys of different types for different tasks: a heap cannot order them."""

    kind = "queue"
    id = "test_mixed"
    preemptive = False
    fifo = False

    def key(self, task: TaskView) -> Any:
        return task.type if task.priority == 0 else task.work


class NanKey(Component):
    """NaN for tasks without a deadline."""

    kind = "queue"
    id = "test_nan"
    preemptive = False
    fifo = False

    def key(self, task: TaskView) -> Any:
        return task.deadline - task.deadline if math.isinf(task.deadline) else task.deadline


class FalseFifo(Component):
    """Claims fifo (the engine then ignores the key) but ranks by priority."""

    kind = "queue"
    id = "test_false_fifo"
    preemptive = False
    fifo = True

    def key(self, task: TaskView) -> Any:
        return task.priority


class StringFlag(Component):
    """A dispatch whose ``pull`` is not a bool."""

    kind = "dispatch"
    id = "test_string_flag"
    pull = "yes"


@pytest.fixture
def seeded_global_random() -> Iterator[None]:
    """Seed global random state (restored afterwards) so the broken cases are reproducible."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(1)
    np.random.seed(1)
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)


@pytest.mark.parametrize("cls", [Shortest, SeededRandom])
def test_conforming_user_components_pass(cls: type[Component]) -> None:
    assert check_component(cls.kind, cls) == []


@pytest.mark.usefixtures("seeded_global_random")
@pytest.mark.parametrize(
    ("cls", "complaint"),
    [
        (GlobalRandom, "differs between two builds with seed 0"),
        (NumpyGlobalRandom, "differs between two builds with seed 0"),
        (ByClock, "differs between two builds with seed 0"),
        (Bookkeeper, "queue_length"),
        (Impostor, "not one of the candidates"),
        (Crashing, "raised RuntimeError: too many candidates"),
        (Agings, "wrote task of decision"),
        (MixedKeys, "not mutually comparable"),
        (NanKey, "key is NaN"),
        (FalseFifo, "declares fifo but its key is not constant"),
        (StringFlag, "pull must be a bool (got 'yes')"),
    ],
)
def test_broken_component_is_flagged(cls: type[Component], complaint: str) -> None:
    """Each broken component yields a problem that names its id and the fault."""
    problems = check_component(cls.kind, cls)
    assert problems, f"{cls.__name__} passed conformance"
    assert all(p.startswith(f"{cls.kind} {cls.id!r}") for p in problems)
    assert any(complaint in p for p in problems), problems


def test_mutation_report_names_the_attribute_and_values() -> None:
    """A write is reported with the object, the attribute and both values."""
    problems = check_component("routing", Bookkeeper)
    wrote = [p for p in problems if "wrote view" in p]
    assert wrote, problems
    assert "queue_length" in wrote[0] and "->" in wrote[0] and "read-only" in wrote[0]
    assert len(problems) <= 8  # the first few of each sort, then a count


def test_unknown_reference_is_a_problem_not_an_exception() -> None:
    """An id that does not resolve is reported with the registry's hint."""
    (problem,) = check_component("routing", "jsqq")
    assert "did you mean 'jsq'" in problem


def test_unknown_kind_raises() -> None:
    with pytest.raises(ValueError, match="unknown component kind 'router'"):
        check_component("router", "jsq")


def test_wrong_kind_class_is_a_problem() -> None:
    (problem,) = check_component("queue", Shortest)
    assert "is not a kossim queue component" in problem

"""The conformance check every policy component must pass.

Policies decide, the engine acts: a component reads views it must not write,
draws only from the random stream it was built with, and returns a valid
decision. :func:`check_component` verifies that contract on synthetic input
without running a simulation:

* **same seed, same decisions**: the component is built twice from the same
  seed and both builds are fed equal (but separate) inputs; every decision
  must agree. A component that draws from global random state, or decides by
  object identity, disagrees with itself here.
* **views untouched**: every public attribute of every view and task is
  snapshotted before and compared after the decisions.
* **decisions valid**: a router returns one of the candidates it was
  offered; a discipline's keys are repeatable, totally ordered and never
  NaN, and constant when it declares ``fifo``; flags (``pull``,
  ``preemptive``, ``fifo``) are booleans.

The inputs come from a fixed generator (seeded by ``seed``), shaped like what
the engine offers: candidates in agent order, each skilled for the task.
"""

from __future__ import annotations

import copy
import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kossim.policy import Component
from kossim.registry import DECISION_KINDS as KINDS
from kossim.registry import ComponentSpec, available, build, registered_kinds, resolve
from kossim.sim.agent import AgentState
from kossim.sim.streams import stream
from kossim.sim.task import Task

__all__ = ["DECISIONS", "check", "check_component", "check_registry"]

DECISIONS = 200
"""Synthetic decisions fed to each build."""

_SKILLS = ("analysis", "compute", "review")
_LEVELS = (0.5, 1.0, 2.0)  # proficiencies and speeds
_DONE_SHARE = (1.0, 1.0, 0.5, 0.1)  # remaining share of work: most tasks are fresh
_SHOWN = 3  # problems of one sort listed before the rest are counted

Ref = str | dict[str, Any] | type[Component]


@dataclass
class _Case:
    """One decision's input: a task, the candidates offered for it, the time."""

    task: Task
    candidates: list[AgentState]
    now: float


def check_component(kind: str, ref: Ref, seed: int = 0, decisions: int = DECISIONS) -> list[str]:
    """Problems found with component ``ref`` of ``kind``; an empty list means it conforms.

    ``ref`` is a registered id, ``{id: ..., param: value}``, ``module:Class``
    or a component class (built with its default parameters). A component
    that raises is reported, never propagated.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r} (allowed: {list(KINDS)})")
    try:
        spec = _spec(kind, ref)
    except Exception as exc:
        return [f"cannot resolve: {type(exc).__name__}: {exc}"]
    name = f"{kind} {spec.id!r}"
    problems: list[str] = []
    try:
        first = _decide(kind, spec, seed, decisions, problems)
        second = _decide(kind, spec, seed, decisions, problems)
    except Exception as exc:
        problems.append(f"raised {type(exc).__name__}: {exc}")
    else:
        problems.extend(_differences(first, second, seed))
    return [f"{name}: {p}" for p in _dedupe(problems)]


def check_registry(seed: int = 0, decisions: int = DECISIONS) -> dict[tuple[str, str], list[str]]:
    """The conformance check of every registered component, by ``(kind, id)``: decision
    components by :func:`check_component`, actor behaviours by
    :func:`~kossim.conformance_actors.check_behaviour`."""
    from kossim.conformance_actors import check_behaviour

    report = {
        (kind, ident): check_component(kind, ident, seed, decisions)
        for kind in KINDS
        for ident in sorted(available(kind))
    }
    for kind in behaviour_kinds():
        for ident, cls in sorted(available(kind).items()):
            if not _needs_parameters(cls):
                report[(kind, ident)] = check_behaviour(kind, ident, seed)
    return report


def check(kind: str, ref: Ref, seed: int = 0) -> list[str]:
    """The conformance check for a component of any kind."""
    if kind in KINDS:
        return check_component(kind, ref, seed)
    from kossim.conformance_actors import check_behaviour

    if isinstance(ref, type):
        ref = f"{ref.__module__}:{ref.__qualname__}"
    return check_behaviour(kind, ref, seed)


def behaviour_kinds() -> list[str]:
    """Every registered kind that is not a decision kind: actor behaviours."""
    return [kind for kind in registered_kinds() if kind not in KINDS]


def _needs_parameters(cls: type[Component]) -> bool:
    return any(f.is_required() for f in cls.Params.model_fields.values())


def _spec(kind: str, ref: Ref) -> ComponentSpec:
    if isinstance(ref, type):
        if not issubclass(ref, Component) or getattr(ref, "kind", None) != kind:
            raise ValueError(f"{ref!r} is not a kossim {kind} component")
        return ComponentSpec(ref, ref.Params())
    return resolve(kind, ref)


# -- decisions -------------------------------------------------------------------------


Decisions = list[tuple[str, Any]]
"""``(label, value)`` of every decision one build made, in order."""


def _decide(
    kind: str, spec: ComponentSpec, seed: int, decisions: int, problems: list[str]
) -> Decisions:
    """Build once from ``seed`` and record every decision on a fresh copy of the input."""
    component = build(spec, stream(seed, f"conformance:{kind}"))
    cases = list(_cases(seed, decisions)) if kind != "dispatch" else []
    before = _snapshot(cases)
    if kind == "dispatch":
        out = [("pull", _flag(component, "pull", problems))]
    elif kind == "routing":
        out = _routing_decisions(component, cases, problems)
    else:
        out = _queue_decisions(component, cases, problems)
    problems.extend(_mutations(before, _snapshot(cases)))
    return out


def _flag(component: Any, attr: str, problems: list[str]) -> Any:
    value = getattr(component, attr, None)
    if not isinstance(value, bool):
        problems.append(f"{attr} must be a bool (got {value!r})")
    return value


def _routing_decisions(component: Any, cases: list[_Case], problems: list[str]) -> Decisions:
    """The position of the chosen candidate in each decision (None: not a candidate)."""
    select = getattr(component, "select", None)
    if not callable(select):
        problems.append("a router needs select(task, candidates, now)")
        return []
    out: Decisions = []
    for i, case in enumerate(cases):
        choice = select(case.task, case.candidates, case.now)
        position = next((j for j, v in enumerate(case.candidates) if v is choice), None)
        if position is None:
            problems.append(f"decision {i}: select returned {choice!r}, not one of the candidates")
        out.append((f"decision {i}", position))
    return out


def _queue_decisions(component: Any, cases: list[_Case], problems: list[str]) -> Decisions:
    """Both flags, then the key of each decision's task."""
    flags = [(attr, _flag(component, attr, problems)) for attr in ("preemptive", "fifo")]
    key: Callable[[Any], Any] | None = getattr(component, "key", None)
    if not callable(key):
        problems.append("a discipline needs key(task)")
        return flags
    keys = []
    for i, case in enumerate(cases):
        k = key(case.task)
        if _is_nan(k):
            problems.append(f"decision {i}: key is NaN, which no queue can order")
        elif not _equal(k, key(case.task)):
            problems.append(f"decision {i}: key of the same task changed between two calls")
        keys.append(k)
    try:
        sorted(keys)
    except TypeError as exc:
        problems.append(f"keys are not mutually comparable: {exc}")
    if flags[1][1] is True and len({repr(k) for k in keys}) > 1:
        problems.append("declares fifo but its key is not constant")
    return flags + [(f"decision {i}", k) for i, k in enumerate(keys)]


def _differences(first: Decisions, second: Decisions, seed: int) -> Iterator[str]:
    if len(first) != len(second):
        yield f"two builds with seed {seed} made {len(first)} and {len(second)} decisions"
        return
    for (label, a), (_, b) in zip(first, second, strict=True):
        if not (_equal(a, b) or (_is_nan(a) and _is_nan(b))):
            yield f"{label} differs between two builds with seed {seed} ({a!r} vs {b!r})"


# -- synthetic input -------------------------------------------------------------------


def _cases(seed: int, n: int) -> Iterator[_Case]:
    """``n`` decisions' input, a pure function of ``seed`` (each call builds new objects).

    A private ``random.Random`` (never the global state) keeps scalar draws cheap.
    """
    rng = random.Random(seed)
    now = 0.0
    next_id = 0
    for _ in range(n):
        now += rng.expovariate(1.0)
        indices = sorted(rng.sample(range(32), rng.randint(1, 8)))
        need = tuple(sorted(rng.sample(_SKILLS, rng.randint(0, 2))))
        cands = [_view(rng, i, need) for i in indices]
        task = _task(rng, next_id, need, now)
        next_id += 1
        for v in cands:  # some candidates hold running tasks, as in a run
            for _ in range(rng.randint(0, 2)):
                v.tasks.add(_task(rng, next_id, need, now))
                next_id += 1
        yield _Case(task, cands, now)


def _view(rng: random.Random, index: int, need: tuple[str, ...]) -> AgentState:
    """An agent skilled for ``need``, with small integer queues so ties are common."""
    skills = {s: rng.choice(_LEVELS) for s in _SKILLS if s in need or rng.random() < 0.5}
    capacity = rng.randint(1, 3)
    v = AgentState(index, f"agent-{index}", "group", rng.choice(_LEVELS), capacity, skills, 1.0)
    v.trust = rng.random()
    v.queue_length = rng.randint(0, 4)
    v.work_outstanding = round(rng.expovariate(0.5), 1) if v.queue_length else 0.0
    return v


def _task(rng: random.Random, ident: int, need: tuple[str, ...], now: float) -> Task:
    work = round(rng.expovariate(1.0), 2) + 0.01
    deadline = now + rng.expovariate(0.2) if rng.random() < 0.7 else math.inf
    arrival = now - rng.expovariate(1.0)
    t = Task(ident, "job", 0, work, rng.randint(0, 2), deadline, need, arrival, True)
    t.remaining = work * rng.choice(_DONE_SHARE)
    t.attempts = rng.randint(0, 2)
    return t


# -- snapshots ---------------------------------------------------------------------------


_SLOTS: dict[type, tuple[str, ...]] = {}
_CONTAINERS = (list, dict, set)
_UNSET = object()


def _public_slots(cls: type) -> tuple[str, ...]:
    names = _SLOTS.get(cls)
    if names is None:
        slots = {
            s for c in cls.__mro__ for s in getattr(c, "__slots__", ()) if not s.startswith("_")
        }
        names = _SLOTS[cls] = tuple(sorted(slots))
    return names


def _state(obj: Any) -> dict[str, Any]:
    """Public attributes, containers copied (a cache such as ``_prof`` is private and free)."""
    names = [
        *_public_slots(type(obj)),
        *(k for k in getattr(obj, "__dict__", {}) if not k.startswith("_")),
    ]
    out = {}
    for name in names:
        value = getattr(obj, name, _UNSET)
        out[name] = copy.copy(value) if type(value) in _CONTAINERS else value
    return out


def _snapshot(cases: list[_Case]) -> list[tuple[str, dict[str, Any]]]:
    shots = []
    for i, case in enumerate(cases):
        shots.append((f"task of decision {i}", _state(case.task)))
        for v in case.candidates:
            shots.append((f"view {v.name} of decision {i}", _state(v)))
            shots.extend((f"task {t.id} held by {v.name}", _state(t)) for t in v.tasks)
    return shots


def _mutations(
    before: list[tuple[str, dict[str, Any]]], after: list[tuple[str, dict[str, Any]]]
) -> Iterator[str]:
    for (what, old), (_, new) in zip(before, after, strict=True):
        for attr in old:
            if not _equal(old[attr], new[attr]):
                yield f"wrote {what}: {attr} {old[attr]!r} -> {new[attr]!r} (inputs are read-only)"


# -- helpers -----------------------------------------------------------------------------


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return False


_NUMBER = re.compile(r"0x[0-9a-f]+|\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _dedupe(problems: list[str]) -> list[str]:
    """The first few problems of each sort (same text up to numbers), then a count."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for p in dict.fromkeys(problems):  # both builds may report the same fault
        sort = _NUMBER.sub("#", p)
        seen[sort] = seen.get(sort, 0) + 1
        if seen[sort] <= _SHOWN:
            out.append(p)
    out.extend(
        f"... and {count - _SHOWN} more like: {sort}"
        for sort, count in seen.items()
        if count > _SHOWN
    )
    return out

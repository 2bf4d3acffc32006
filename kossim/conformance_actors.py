"""The conformance check of actor behaviours (coordinator, agent, detector and new kinds).

A behaviour acts only through its context, so it is checked by running it:
the behaviour is placed in a small standard world (two agent groups with
different skills, jittery latency, agents that fail and lose their tasks)
in place of the default of its kind, and the world is run several times.

* **same seed, same run**: two runs from one seed give the same execution
  log (every message, decision and reason, in order), the same timers set,
  and the same metrics. A behaviour that draws from global random state, or
  iterates over a set of objects, disagrees with itself here.
* **nothing mutated outside the context**: the agents' static profiles
  (speed, capacity, skills, trust) and the scenario are unchanged after the
  run.
* **the engine's invariants hold**: every task is accounted for exactly
  once (``lost`` is 0, each task id recorded once) under both instant and
  jittery networks, with failures that lose tasks and with failures that
  suspend them.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from kossim.registry import resolve

__all__ = ["WORLDS", "check_behaviour"]

_WORKLOAD = {
    "arrivals": {"process": "poisson", "rate": 3.0},
    "tasks": [
        {"type": "plain", "share": 2.0, "work": {"dist": "exponential", "mean": 1.0}},
        {"type": "special", "work": {"dist": "exponential", "mean": 1.0}, "skills": ["gpu"]},
    ],
}
_AGENTS = [
    {"group": "cpu", "count": 4, "speed": 1.0, "skills": {"cpu": 1.0}},
    {"group": "gpu", "count": 2, "speed": 1.5, "capacity": 2, "skills": {"cpu": 1.0, "gpu": 1.0}},
]


def _world(latency: dict[str, Any], on_failure: str) -> dict[str, Any]:
    return {
        "name": "conformance",
        "horizon": 120.0,
        "scenario": {
            "agents": _AGENTS,
            "network": {"latency": latency},
            "workload": _WORKLOAD,
            "failures": {
                "agents": {
                    "up": {"dist": "exponential", "mean": 25.0},
                    "down": {"dist": "exponential", "mean": 2.0},
                    "on_failure": on_failure,
                    "detect": {"dist": "constant", "value": 0.5},
                    "max_attempts": 3,
                }
            },
        },
    }


WORLDS: dict[str, dict[str, Any]] = {
    "jittery network, requeue": _world({"dist": "exponential", "mean": 0.1}, "requeue"),
    "instant network, resume": _world({"dist": "constant", "value": 0.0}, "resume"),
}
"""The standard worlds each behaviour is run in."""

POLICIES: dict[str, dict[str, Any]] = {
    "central": {"dispatch": "central"},
    "push": {"dispatch": "push", "routing": "jsq"},
}
"""The default components around the behaviour (a coordinator behaviour may ignore them)."""


def check_behaviour(kind: str, ref: str | dict[str, Any], seed: int = 0) -> list[str]:
    """Problems found with behaviour ``ref`` of ``kind``; an empty list means it conforms.

    A behaviour that raises, or fails its run, is reported, never propagated.
    """
    try:
        spec = resolve(kind, ref)
    except Exception as exc:
        return [f"{kind} {ref!r}: cannot resolve: {type(exc).__name__}: {exc}"]
    name = f"{kind} {spec.id!r}"
    problems: list[str] = []
    for world_name, world in WORLDS.items():
        for policy_name, components in POLICIES.items():
            where = f"{world_name}, {policy_name}"
            cfg = copy.deepcopy(world)
            cfg["policies"] = [{"name": "p", **components, kind: ref}]
            _lock_partners(kind, spec.cls, cfg)
            try:
                problems.extend(f"{where}: {p}" for p in _check_world(cfg, seed))
            except Exception as exc:
                problems.append(f"{where}: raised {type(exc).__name__}: {exc}")
    return [f"{name}: {p}" for p in problems]


def _lock_partners(kind: str, cls: Any, cfg: dict[str, Any]) -> None:
    """A lock service, or an agent that takes locks, is checked where tasks lock a resource
    (exclusive and shared) and agents pause, beside the other's default (``lease``,
    ``locking``)."""
    if kind == "locks" and getattr(cls, "grants", False):
        cfg["policies"][0]["agent"] = "locking"
    elif kind == "agent" and getattr(cls, "takes_locks", False):
        cfg["policies"][0]["locks"] = {"id": "lease", "duration": 1.0, "renew_every": 0.3}
    else:
        return
    sc = cfg["scenario"]
    sc["resources"] = [{"name": "store"}]
    sc["workload"]["tasks"][0]["locks"] = [{"resource": "store", "mode": "shared"}]
    sc["workload"]["tasks"][1]["locks"] = ["store"]
    sc["agents"][0]["pause"] = {
        "every": {"dist": "exponential", "mean": 20.0},
        "length": {"dist": "exponential", "mean": 1.5},
    }


def _check_world(cfg: dict[str, Any], seed: int) -> list[str]:
    from unittest import mock

    from kossim.config.models import Experiment
    from kossim.runspec import RunSpec
    from kossim.sim import simulate, simulate_world
    from kossim.sim.recorder import Recorder

    spec = RunSpec.make(cfg, "p", (), seed, trace=True)
    runs = []
    add = Recorder.add
    for _ in range(2):
        recorded: list[int] = []

        def counted(rec: Recorder, task: Any, seen: list[int] = recorded) -> None:
            seen.append(task.id)
            add(rec, task)

        with mock.patch.object(Recorder, "add", counted):
            world, cols = simulate_world(spec)
        runs.append((world, cols, recorded))
    problems: list[str] = []
    (w1, c1, rec1), (w2, _, _) = runs
    log1, log2 = w1.kernel.log, w2.kernel.log
    assert log1 is not None and log2 is not None
    if log1.rows != log2.rows:
        first = next(
            (i for i, (a, b) in enumerate(zip(log1.rows, log2.rows, strict=False)) if a != b),
            min(len(log1.rows), len(log2.rows)),
        )
        problems.append(
            f"same seed, different execution logs (first difference at row {first}: "
            f"{_row(log1.rows, first)} vs {_row(log2.rows, first)})"
        )
    if log1.timers != log2.timers:
        problems.append(
            f"same seed, different timers ({len(log1.timers)} vs {len(log2.timers)} set)"
        )
    if len(rec1) != len(set(rec1)):
        problems.append("a task was recorded twice")
    if sorted(c1["id"].tolist()) != list(range(w1.arrived)):
        problems.append("a task is missing or counted twice at the end of the run")
    scenario = Experiment.model_validate(cfg).scenario
    if [_profile(p) for p in w1.profiles] != _profiles(scenario) or (
        w1.exp.scenario.model_dump() != scenario.model_dump()
    ):
        problems.append("mutated the agents' profiles or the scenario")
    result = simulate(spec)
    again = simulate(spec)
    if result.status != "ok":
        problems.append(f"the run failed: {(result.error or '').strip().splitlines()[-1]}")
        return problems
    m = {(k, s): v for k, s, v in result.metrics}
    if m.get(("lost", "all"), 0.0) != 0:
        problems.append(f"lost {m[('lost', 'all')]:g} tasks")
    if not _same(result.metrics, again.metrics):
        problems.append("same seed, different metrics")
    return problems


def _profile(p: Any) -> tuple[Any, ...]:
    return (p.name, p.group, p.speed, p.capacity, dict(p.skills), p.trust)


def _profiles(scenario: Any) -> list[tuple[Any, ...]]:
    """The agents' profiles as configured."""
    return [
        (f"{g.group}-{i}", g.group, g.speed, g.capacity, dict(g.skills), g.trust)
        for g in scenario.agents
        for i in range(g.count)
    ]


def _row(rows: list[Any], i: int) -> str:
    return repr(rows[i][:7]) if i < len(rows) else "(end of log)"


def _same(a: list[tuple[str, str, float]], b: list[tuple[str, str, float]]) -> bool:
    return len(a) == len(b) and all(
        x[:2] == y[:2] and (x[2] == y[2] or (math.isnan(x[2]) and math.isnan(y[2])))
        for x, y in zip(a, b, strict=True)
    )

"""Conservation invariants of the engine on random small scenarios (Hypothesis).

Whatever the system, workload and policy, every arrival is accounted for
exactly once (completed, abandoned or in flight, never lost), times are
causal, no agent ever runs more tasks than its capacity or runs while down,
no task runs in two places, the engine's own number-in-system counter agrees
with the task trace, and a run is a pure function of its seed.

A stateful test drives one agent through arbitrary failure and repair
sequences, checking the same bookkeeping after every step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kossim.config.models import Experiment
from kossim.runspec import RunSpec
from kossim.sim import simulate, simulate_world
from kossim.sim.agent import Agent
from kossim.sim.task import ABANDONED, DONE, RUNNING, TERMINAL, Task
from kossim.sim.world import World

SKILLS = ("a", "b")
LEVELS = (0.5, 1.0, 2.0)
DISPATCH = ("central", "push")
ROUTING = ("random", "round_robin", "jsq", {"id": "power_of_d", "d": 2}, "least_work")
QUEUE = (
    "fcfs",
    "priority",
    "priority_preemptive",
    "srpt",
    "edf",
    {"id": "edf", "preemptive": True},
)
MODES = ("resume", "restart", "requeue")


# -- scenarios ---------------------------------------------------------------------------


def _dist(draw: st.DrawFn, mean: float, kinds: tuple[str, ...]) -> dict[str, Any]:
    kind = draw(st.sampled_from(kinds))
    if kind == "constant":
        return {"dist": "constant", "value": mean}
    if kind == "uniform":
        return {"dist": "uniform", "low": 0.5 * mean, "high": 1.5 * mean}
    if kind == "hyperexponential":
        return {"dist": "hyperexponential", "mean": mean, "scv": 4.0}
    return {"dist": "exponential", "mean": mean}


@st.composite
def agent_groups(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-3 groups, 1-6 agents in all, capacities 1-3, assorted speeds and skills."""
    groups = []
    total = 0
    for g in range(draw(st.integers(1, 3))):
        count = draw(st.integers(1, max(1, min(3, 6 - total))))
        total += count
        skills = draw(st.lists(st.sampled_from(SKILLS), unique=True, max_size=2))
        groups.append(
            {
                "group": f"g{g}",
                "count": count,
                "capacity": draw(st.integers(1, 3)),
                "speed": draw(st.sampled_from(LEVELS)),
                "skills": {s: draw(st.sampled_from(LEVELS)) for s in skills},
            }
        )
        if total >= 6:
            break
    return groups


@st.composite
def task_types(draw: st.DrawFn, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """1-3 types; each needs skills that some one group has (the loader insists)."""
    types = []
    for i in range(draw(st.integers(1, 3))):
        offered = sorted(draw(st.sampled_from(groups))["skills"])
        need = draw(st.lists(st.sampled_from(offered), unique=True)) if offered else []
        deadline = draw(st.none() | st.sampled_from([1.0, 4.0]))
        types.append(
            {
                "type": f"t{i}",
                "share": draw(st.sampled_from([1.0, 2.0])),
                "work": _dist(
                    draw,
                    draw(st.sampled_from([0.5, 1.0, 2.0])),
                    ("constant", "uniform", "exponential", "hyperexponential"),
                ),
                "priority": draw(st.integers(0, 2)),
                "skills": need,
                **(
                    {"deadline": _dist(draw, deadline, ("constant", "exponential"))}
                    if deadline
                    else {}
                ),
            }
        )
    return types


@st.composite
def failures(draw: st.DrawFn, groups: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "up": _dist(draw, draw(st.sampled_from([3.0, 10.0, 40.0])), ("constant", "exponential")),
        "down": _dist(draw, draw(st.sampled_from([0.5, 2.0])), ("constant", "exponential")),
        "on_failure": draw(st.sampled_from(MODES)),
        "detect": draw(
            st.sampled_from(
                [{"dist": "constant", "value": 0.0}, {"dist": "exponential", "mean": 0.3}]
            )
        ),
        "max_attempts": draw(st.integers(1, 4)),
    }
    if len(groups) > 1 and draw(st.booleans()):
        spec["only"] = [groups[0]["group"]]
    return {"agents": spec}


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A plain experiment with one policy ``p`` and a short horizon (or a task count).

    The arrival rate puts the work offered at 30 % to 130 % of the agents'
    nominal capacity (overload on purpose, too).
    """
    groups = draw(agent_groups())
    types = draw(task_types(groups))
    capacity = sum(g["count"] * g["capacity"] * g["speed"] for g in groups)
    shares = [t["share"] for t in types]
    work = sum(s * _mean(t["work"]) for s, t in zip(shares, types, strict=True)) / sum(shares)
    load = draw(st.sampled_from([0.3, 0.7, 0.95, 1.3]))
    scenario: dict[str, Any] = {
        "agents": groups,
        "workload": {
            "arrivals": {"process": "poisson", "rate": load * capacity / work},
            "tasks": types,
        },
    }
    latency = draw(st.sampled_from([0.0, 0.2]))
    if latency:
        scenario["network"] = {"latency": _dist(draw, latency, ("constant", "exponential"))}
    by_count = draw(st.booleans())
    if draw(st.booleans()):
        scenario["failures"] = draw(failures(groups))
    policy = {
        "name": "p",
        "dispatch": draw(st.sampled_from(DISPATCH)),
        "routing": draw(st.sampled_from(ROUTING)),
        "queue": draw(st.sampled_from(QUEUE)),
    }
    cfg: dict[str, Any] = {"name": "conservation", "scenario": scenario, "policies": [policy]}
    if by_count:
        cfg["tasks"] = draw(st.integers(5, 60))
        cfg["warmup_tasks"] = draw(st.sampled_from([0, 5]))
    else:
        cfg["horizon"] = draw(st.sampled_from([20.0, 60.0]))
        cfg["warmup"] = draw(st.sampled_from([0.0, 5.0, "auto"]))
    return cfg


def _mean(dist: dict[str, Any]) -> float:
    return float(
        dist.get("mean", dist.get("value", (dist.get("low", 0) + dist.get("high", 0)) / 2))
    )


# -- guards on the engine's actions -----------------------------------------------------------


@contextmanager
def guarded_engine() -> Iterator[None]:
    """Check every start and every ending as it happens.

    A start must put a live task that runs nowhere else on an agent that is
    up and stays within capacity. A task ends once: completed from running,
    or abandoned (the engine marks it so before recording it).
    """
    start, finish = Agent.start, World.finish

    def checked_start(agent: Agent, task: Task) -> None:
        assert agent.up, f"{task!r} started on {agent.name} while it is down"
        assert task.state not in TERMINAL and task.end < 0, f"{task!r} started after it ended"
        elsewhere = [a.name for a in agent.world.agents if task in a.running]
        assert not elsewhere, f"{task!r} started on {agent.name} while running on {elsewhere}"
        start(agent, task)
        assert len(agent.running) <= agent.capacity, (
            f"{agent.name} runs {len(agent.running)} tasks with capacity {agent.capacity}"
        )

    def checked_finish(world: World, task: Task) -> None:
        assert task.end < 0, f"{task!r} ended twice"
        assert task.state in (RUNNING, ABANDONED), f"{task!r} completed from state {task.state}"
        finish(world, task)

    with (
        mock.patch.object(Agent, "start", checked_start),
        mock.patch.object(World, "finish", checked_finish),
    ):
        yield


def in_system_from_trace(cols: dict[str, np.ndarray], t: float) -> int:
    arrived = cols["arrival"] <= t
    present = (cols["end"] < 0) | (cols["end"] > t)
    return int((arrived & present).sum())


def _near_event(cols: dict[str, np.ndarray], t: float) -> bool:
    times = np.concatenate([cols["arrival"], cols["end"]])
    return bool(np.any(np.abs(times - t) < 1e-9))


@given(cfg=scenarios(), seed=st.integers(0, 2**16))
def test_every_arrival_is_accounted_for(cfg: dict[str, Any], seed: int) -> None:
    """Conservation, causality, capacity and determinism on a random scenario."""
    spec = RunSpec.make(cfg, "p", (), seed)
    with guarded_engine():
        world, cols = simulate_world(spec)
    n = world.arrived
    assert cols["id"].tolist() == list(range(n)), "each arrival appears exactly once"
    state, arrival, start, end = cols["state"], cols["arrival"], cols["start"], cols["end"]
    done, abandoned = state == DONE, state == ABANDONED
    live = ~(done | abandoned)
    assert (start[done] >= arrival[done]).all()
    assert (end[done] >= start[done]).all()
    assert (end[done] <= world.recorder.end_time).all()
    assert (end[abandoned] >= arrival[abandoned]).all()
    assert (end[live] == -1).all()
    assert (cols["attempts"][done] >= 1).all()
    assert world.in_system == int(live.sum())
    if world.limit is not None:  # tasks: mode drains, unless it hits the drain limit
        cap = world.exp.drain_limit * world.limit * world.mean_iat
        assert world.recorder.end_time <= cap + 1e-9
        if world.recorder.end_time < cap:
            assert not live.any(), "a tasks: run ended early with tasks in the system"
    for t, v in zip(world.recorder.ts_times, world.recorder.ts_values, strict=True):
        if not _near_event(cols, t):
            assert v == in_system_from_trace(cols, t), f"in-system counter off at t={t}"

    result = simulate(spec)
    assert result.status == "ok", result.error
    m = {(name, scope): v for name, scope, v in result.metrics}
    assert m[("lost", "all")] == 0
    measured = cols["measured"]
    assert m[("arrived", "all")] == measured.sum()
    assert m[("completed", "all")] == (done & measured).sum()
    assert m[("abandoned", "all")] == (abandoned & measured).sum()
    assert m[("in_flight", "all")] == (live & measured).sum()
    again = simulate(spec)
    assert _same_rows(result.metrics, again.metrics), "same seed gave different metrics"


def _same_rows(a: list[tuple[str, str, float]], b: list[tuple[str, str, float]]) -> bool:
    if [r[:2] for r in a] != [r[:2] for r in b]:
        return False
    return all(
        x == y or (math.isnan(x) and math.isnan(y)) for (*_, x), (*_, y) in zip(a, b, strict=True)
    )


# -- one agent under arbitrary failures ------------------------------------------------------------


def _single_agent_world(mode: str, capacity: int, preemptive: bool) -> World:
    """A world with one agent and no failure clock: the state machine fails it by hand."""
    cfg = {
        "name": "machine",
        "horizon": 1e9,
        "scenario": {
            "agents": [{"group": "w", "capacity": capacity}],
            "workload": {
                "arrivals": {"process": "poisson", "rate": 1.0},
                "tasks": [{"type": "job", "work": {"dist": "constant", "value": 1.0}}],
            },
            # A clock that never fires within the test selects the failure semantics.
            "failures": {
                "agents": {
                    "up": {"dist": "constant", "value": 1e12},
                    "down": {"dist": "constant", "value": 1.0},
                    "on_failure": mode,
                }
            },
        },
        "policies": [
            {
                "name": "p",
                "dispatch": "push",
                "queue": "srpt" if preemptive else "fcfs",
            }
        ],
    }
    exp = Experiment.model_validate(cfg)
    return World(exp, exp.policy("p"), seed=0)


class FailureRepairMachine(RuleBasedStateMachine):
    """Tasks, failures, repairs and time steps in any order on one agent.

    After every step: the agent never exceeds its capacity, runs nothing
    while down, each task sits in exactly one place, and the work a task has
    left never grows beyond its size nor falls below zero.
    """

    world: World
    agent: Agent

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[Task] = []
        self.downs = 0

    @initialize(
        mode=st.sampled_from(MODES),
        capacity=st.integers(1, 3),
        preemptive=st.booleans(),
    )
    def build(self, mode: str, capacity: int, preemptive: bool) -> None:
        self.world = _single_agent_world(mode, capacity, preemptive)
        self.agent = self.world.agents[0]

    @rule(work=st.sampled_from([0.25, 1.0, 3.0]))
    def arrive(self, work: float) -> None:
        w = self.world
        task = Task(len(self.tasks), "job", 0, work, 0, math.inf, (), w.env.now, True)
        self.tasks.append(task)
        w.arrived += 1
        w.in_system += 1
        w.coordinator.on_arrival(None, task)

    @rule()
    def fail(self) -> None:
        self.downs += 1
        self.agent.fail()

    @precondition(lambda self: self.downs > 0)
    @rule()
    def repair(self) -> None:
        self.downs -= 1
        self.agent.repair()

    @rule(dt=st.sampled_from([0.1, 0.5, 2.0]))
    def advance(self, dt: float) -> None:
        env: simpy.Environment = self.world.env
        env.run(until=env.now + dt)

    @precondition(lambda self: self.downs == 0)
    @rule()
    def drain(self) -> None:
        """Up and left alone long enough, the agent finishes (or gives up) everything."""
        env: simpy.Environment = self.world.env
        env.run(until=env.now + 4.0 * sum(t.work for t in self.tasks) + 1.0)
        assert all(t.state in TERMINAL for t in self.tasks)

    @invariant()
    def bookkeeping(self) -> None:
        agent = self.agent
        assert agent.up == (self.downs == 0)
        assert len(agent.running) <= agent.capacity
        if agent.up:
            assert all(t.state == RUNNING for t in agent.running)
        else:
            assert all(t.state != RUNNING for t in agent.running)
        places: list[Task] = [
            *self.world.coordinator.held(),
            *self.world.transit,
            *agent.live_tasks(),
        ]
        ids = [t.id for t in places]
        assert len(ids) == len(set(ids)), "a task is in two places"
        finished = {t.id for t in self.tasks if t.state in TERMINAL}
        assert set(ids) | finished == {t.id for t in self.tasks}, "a task went missing"
        assert not set(ids) & finished
        assert self.world.in_system == len(ids)
        for t in self.tasks:
            assert -1e-9 <= t.remaining <= t.work + 1e-9
            if t.state == DONE:  # no free work: at speed 1 a task takes at least its size
                assert t.end - t.arrival >= t.work - 1e-9


# Examples, randomness and deadlines come from the profile (tests/conftest.py).
FailureRepairMachine.TestCase.settings = settings(stateful_step_count=30)
TestFailureRepair = FailureRepairMachine.TestCase

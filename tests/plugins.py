"""Test-only code that worker processes must be able to import by name.

Experiments in the tests refer to ``tests.plugins:Exploding``, and executor
tests hand these run functions to worker processes, which import them by
module path; functions defined inside a test module would not travel.
"""

from __future__ import annotations

import os
import random as _random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from kossim.policy import AgentView, Params, TaskView
from kossim.runspec import RunResult, RunSpec
from kossim.sim.task import Task
from policies.agent import Worker
from policies.coordinator import Queueing
from policies.detector import Timeout
from policies.routing import Random


class ExplodingParams(Params):
    seed: int = Field(default=1, description="the run seed whose routing fails")
    after: int = Field(default=5, ge=0, description="decisions made before failing")


class Exploding(Random):
    """Random routing that raises after ``after`` decisions in the run seeded ``seed``.

    A component is never told its run's seed; it is read back from the
    component's own stream, which kossim spawns from ``SeedSequence(seed)``.
    """

    kind = "routing"
    id = "exploding"
    description = "random routing that fails on purpose (tests only)"
    Params = ExplodingParams

    def __init__(self, params: ExplodingParams, rng: np.random.Generator) -> None:
        super().__init__(params, rng)
        run_seed = rng.bit_generator.seed_seq.entropy  # type: ignore[attr-defined]
        self._doomed = run_seed == params.seed
        self._left = params.after

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        if self._doomed:
            if self._left <= 0:
                raise RuntimeError(f"exploding routing went off (seed {self.params.seed})")
            self._left -= 1
        return super().select(task, candidates, now)


def quick_result(spec: RunSpec) -> RunResult:
    """A run that simulates nothing: measures dispatch, not the engine."""
    return RunResult(
        spec.run_id,
        spec.policy,
        spec.point,
        spec.seed,
        "ok",
        0.0,
        metrics=[("seed_echo", "all", float(spec.seed))],
        distributions={"sojourn": [0.0] * 101},
        timeseries={"in_system": ([0.0, 1.0], [0.0, float(spec.seed)])},
    )


def sleepy_result(spec: RunSpec) -> RunResult:
    """A run of one second that leaves ``<seed>.started`` in ``spec.config["marks"]``."""
    (Path(spec.config["marks"]) / f"{spec.seed}.started").touch()
    time.sleep(1.0)
    return quick_result(spec)


def dying_result(spec: RunSpec) -> RunResult:
    """Seed 3 kills its worker process outright (as a segfault or the OOM killer would)."""
    if spec.seed == 3:
        os._exit(17)
    return quick_result(spec)


class Stray(Random):
    """Random routing that, from the ``after``-th decision on, picks a down or foreign agent."""

    kind = "routing"
    id = "stray"
    description = "routing that chooses outside its candidates (tests only)"
    Params = ExplodingParams

    def __init__(self, params: ExplodingParams, rng: np.random.Generator) -> None:
        super().__init__(params, rng)
        self._left = params.after

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        if self._left <= 0:
            from kossim.sim.agent import AgentState

            return AgentState(0, "impostor", "w", 1.0, 1, {}, 1.0)
        self._left -= 1
        return super().select(task, candidates, now)


class Counting(Random):
    """Random routing that counts its decisions and the candidates it was offered."""

    kind = "routing"
    id = "counting"
    description = "random routing that records how often it is asked (tests only)"
    calls: list[int] = []  # shared on purpose: the test reads it back

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        Counting.calls.append(len(candidates))
        return super().select(task, candidates, now)


class SleepyParams(Params):
    pause: float = Field(default=0.001, ge=0, description="seconds slept per decision")


class Sleepy(Random):
    """Random routing that sleeps ``pause`` seconds per decision: runs that last a
    while without using the CPU, for tests that interrupt a sweep in the middle."""

    kind = "routing"
    id = "sleepy"
    description = "random routing that sleeps per decision (tests only)"
    Params = SleepyParams

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        time.sleep(self.params.pause)
        return super().select(task, candidates, now)


class SetOrderCoordinator(Queueing):
    """Re-sends held tasks in the order of a set of objects: memory order, not the seed's."""

    id = "set_order"
    description = "queueing, but drains a set of tasks (tests only)"

    def on_arrival(self, sender: Any, task: Task) -> None:
        self._held = getattr(self, "_held", set())
        self._held.add(task)
        if len(self._held) >= 3:
            for held in list(self._held):
                super().on_arrival(sender, held)
            self._held = set()


class MutatingAgent(Worker):
    """A worker that speeds itself up by writing its own profile (outside its context)."""

    id = "mutating"
    description = "writes its profile (tests only)"

    def on_complete(self, task: Task) -> None:
        self.ctx.profile.speed *= 1.01
        super().on_complete(task)


class RestlessDetector(Timeout):
    """A timeout detector whose timeout is drawn from Python's global random state."""

    id = "restless"
    description = "timeout from global random state (tests only)"

    def limit(self, i: int) -> float:
        return float(self.params.timeout) * (1.0 + _random.random())


class Spinner(Timeout):
    """A timeout detector that also re-arms a zero-delay timer forever (tests only)."""

    id = "spinner"
    description = "loops without time passing (tests only)"

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        ctx.after(0.0, "spin")

    def on_spin(self, sender: Any, payload: Any) -> None:
        self.ctx.after(0.0, "spin")

"""Routing: which agent gets a task, chosen among the candidates the engine offers.

Candidates are the agents the coordinator believes up, skilled for the task
and (under pull dispatch) with a free slot, in agent order. Ties are broken
uniformly at random from the component's own stream, so no agent is favoured
by its position.

The coordinator's candidates are a :class:`~kossim.sim.pool.Pool` (a list
with indexes): ``round_robin``, ``jsq``, ``least_work`` and ``fastest`` query
it in O(log N) and fall back to a scan of any other sequence, with the same
choice and the same random draws either way.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from kossim.dists import Uniform, draws
from kossim.policy import AgentView, Component, Params, TaskView

__all__ = ["Fastest", "Jsq", "LeastWork", "PowerOfD", "Random", "RoundRobin"]


class _Randomised(Component):
    def __init__(self, params: Params, rng: np.random.Generator) -> None:
        super().__init__(params, rng)
        self._u = draws(Uniform(dist="uniform", low=0.0, high=1.0), rng)  # a Sampler's draws

    def _pick(self, n: int) -> int:
        """A uniform index below ``n``; a lone candidate needs no draw."""
        return int(self._u() * n) if n > 1 else 0

    def _argmin(self, agents: Sequence[AgentView], values: Sequence[float]) -> AgentView:
        best = min(values)
        ties = [a for a, v in zip(agents, values, strict=True) if v == best]
        return ties[0] if len(ties) == 1 else ties[self._pick(len(ties))]

    def _tie(self, ties: Sequence[Any]) -> Any:
        """One of ``ties`` (the minimisers, in index order) at random, as ``_argmin`` does."""
        return ties[0] if len(ties) == 1 else ties[self._pick(len(ties))]


class Random(_Randomised):
    """Uniformly random candidate."""

    kind = "routing"
    id = "random"
    description = "uniformly random agent"
    #: Offered one candidate, ``select`` returns it without a draw or any change of state:
    #: a coordinator may then skip the call (the default pull hand-off does). Read from the
    #: class that sets it only: a subclass (which may count its decisions) is always asked.
    lone_is_chosen = True

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        n = len(candidates)  # _pick inlined: this runs on every dispatch of the default policy
        return candidates[int(self._u() * n)] if n > 1 else candidates[0]


class RoundRobin(Component):
    """Cycle through agents in index order, skipping those not offered."""

    kind = "routing"
    id = "round_robin"
    description = "agents in turn, in index order"

    def __init__(self, params: Params, rng: np.random.Generator) -> None:
        super().__init__(params, rng)
        self._next = 0

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        k = bisect_left(candidates, self._next, key=_index)  # candidates come in index order
        chosen = candidates[k] if k < len(candidates) else candidates[0]
        self._next = chosen.index + 1
        return chosen


class Jsq(_Randomised):
    """Join the shortest queue (fewest tasks sent and not reported finished)."""

    kind = "routing"
    id = "jsq"
    description = "join the shortest queue (ties at random)"
    lone_is_chosen = True  # see Random
    indexes: ClassVar[tuple[str, ...]] = ("queue_length",)

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        least = getattr(candidates, "least", None)
        if least is None:
            return self._argmin(candidates, [a.queue_length for a in candidates])
        return self._tie(least("queue_length"))


class PowerOfDParams(Params):
    d: int = Field(default=2, ge=1, le=64, description="agents sampled per decision")


class PowerOfD(_Randomised):
    """Sample ``d`` distinct candidates uniformly and join the shortest of them."""

    kind = "routing"
    id = "power_of_d"
    description = "sample d agents, join the shortest queue among them"
    lone_is_chosen = True  # see Random
    Params = PowerOfDParams

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        n, d = len(candidates), self.params.d
        if n <= d:
            return self._argmin(candidates, [a.queue_length for a in candidates])
        picked: list[int] = []
        while len(picked) < d:  # rejection: d is small next to n
            i = self._pick(n)
            if i not in picked:
                picked.append(i)
        sample = [candidates[i] for i in picked]
        return self._argmin(sample, [a.queue_length for a in sample])


class LeastWork(_Randomised):
    """Earliest expected finish: outstanding service time plus this task's own on the agent."""

    kind = "routing"
    id = "least_work"
    description = "least outstanding work (service time sent, plus this task's) first"
    lone_is_chosen = True  # see Random
    indexes: ClassVar[tuple[str, ...]] = ("work_outstanding",)

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        if getattr(candidates, "skills", None) == task.skills:  # an indexed pool for its skills
            return self._tie(candidates.least("work_outstanding", task.work))  # type: ignore[attr-defined]
        return self._argmin(
            candidates,
            [
                a.work_outstanding + task.work / (a.speed * a.proficiency(task.skills))
                for a in candidates
            ],
        )


class Fastest(_Randomised):
    """The candidate that would serve this task fastest (speed x proficiency), ties at random.

    Under central dispatch the candidates are the free agents, so this is the
    classic "fastest free server" rule for heterogeneous fleets; under push it
    ignores queues (pair it with care).
    """

    kind = "routing"
    id = "fastest"
    description = (
        "the agent with the highest service rate for the task (fastest free, under central)"
    )
    lone_is_chosen = True  # see Random
    indexes: ClassVar[tuple[str, ...]] = ("rate",)

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        if getattr(candidates, "skills", None) == task.skills:  # an indexed pool for its skills
            return self._tie(candidates.fastest())  # type: ignore[attr-defined]
        return self._argmin(
            candidates, [-(a.speed * a.proficiency(task.skills)) for a in candidates]
        )


def _index(a: AgentView) -> int:
    return a.index

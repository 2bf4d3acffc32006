"""Role-based routing, and the coordinator's side of roles (fallback tiers, reports).

``role_based`` scores each eligible agent by the time it expects the task to
take there, each part weighted by a parameter:

    score = proficiency x work / (speed x p) + load x outstanding / capacity
            + transfer x (time to bring the input) - affinity x (1 if preferred)

where ``p`` is the agent's proficiency for the task (its role's penalty
included) raised by the experience the router has *heard of*: it counts the
completions each agent reported (``done`` messages) and applies the
scenario's learning curve to them, never reading the agents' true records.
The lowest score wins (ties at random); the breakdown is the decision's
reason in the execution log.

Indexed (no scan of the fleet): for a task type, every part of an agent's
score but the load is a constant of its *class*, ``(1 / (speed x p),
capacity, transfer - affinity)``, and within a class the score only grows
with the outstanding work. Given a :class:`~kossim.sim.pool.Pool`, the router
keeps its candidates partitioned by class per type (an agent changes class
when a report moves its experience) and takes each class's least outstanding
work: O(classes x log N) per decision, the same choice and the same draws as
the scan. Still linear: ``load: 0`` (every agent of the best classes ties,
and the ties are listed), candidates that come as a plain list (role
fallback tiers, pull dispatch with a scan), and a fleet whose agents are all
in classes of their own (learning agents early on, each at its own
experience; classes merge as the curves flatten to their cap).

The coordinator side (:func:`hook_roles`): when a task's role has a fallback,
its candidates are the holders of the role that are available, and only when
none is, the substitutes (logged as a ``fallback`` decision with its reason).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from kossim.policy import AgentView, Params, TaskView
from kossim.sim.pool import Pool, Tied
from kossim.sim.roles import fallback_tiers, learned, transfer_time
from kossim.sim.task import DONE, Task
from policies.routing import _Randomised

__all__ = ["RoleBased", "hook_roles", "role_tiers"]


class RoleBasedParams(Params):
    proficiency: float = Field(
        default=1.0, ge=0, description="weight of the expected service time (with experience)"
    )
    load: float = Field(default=1.0, ge=0, description="weight of the known outstanding work")
    transfer: float = Field(default=1.0, ge=0, description="weight of the data transfer time")
    affinity: float = Field(
        default=0.0, ge=0, description="time credited to an agent the task type prefers"
    )
    history: bool = Field(
        default=True, description="estimate learning from the completions reported"
    )
    sample: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="score only this many candidates drawn at random (0: every one); "
        "O(sample) per decision where the candidates come as a ready list",
    )


class RoleBased(_Randomised):
    """Weighted proficiency (with reported history), affinity, data transfer and load."""

    kind = "routing"
    id = "role_based"
    description = "score agents by proficiency with experience, affinity, data transfer and load"
    Params = RoleBasedParams
    #: views report their outstanding work, so a pool can be partitioned by class
    indexes: ClassVar[tuple[str, ...]] = ("classes",)

    def __init__(self, params: RoleBasedParams, rng: np.random.Generator) -> None:
        super().__init__(params, rng)
        self.heard: dict[tuple[int, int], int] = {}  # (agent, type) -> completions reported
        self._profiles: list[AgentView] = []
        self._nodes: list[str] = []
        self._tags: list[frozenset[str]] = []
        self._learning: list[tuple[float, float] | None] = []
        self._affinity: list[frozenset[str]] = []
        self._data: list[tuple[str, float] | None] = []
        self._latency: Callable[[str, str], float] = _no_latency
        self._bandwidth: float | None = None
        # Per task type, per agent index: 1 / (speed x proficiency with experience), and
        # the weighted transfer time less the affinity credit (static but for experience).
        self._tables: dict[int, tuple[list[float], list[float], tuple[str, ...]]] = {}
        self._last: tuple[float, float, AgentView, int, tuple[str, ...]] | None = None
        # Per task type, the pools partitioned for it (by id): reclassed on experience.
        self._parted: dict[int, dict[int, Pool]] = {}
        self._keys: dict[int, Callable[[Any], tuple[float, int, float]]] = {}

    def bind(self, ctx: Any) -> None:
        """Static facts from the coordinator's context: where agents are, what each task
        type prefers and where its data is, the learning curves as configured."""
        sc = ctx.scenario
        groups = {g.group: g for g in sc.agents}
        self._profiles = list(ctx.profiles)
        self._nodes = [a.node for a in ctx.agents]
        self._tags = [
            frozenset((v.group, n)) for v, n in zip(self._profiles, self._nodes, strict=True)
        ]
        self._learning = [
            (lg.cap, lg.tau) if (lg := groups[v.group].learning) else None for v in self._profiles
        ]
        tasks = sc.workload.tasks
        self._affinity = [frozenset(t.affinity) for t in tasks]
        self._data = [(t.data.node, t.data.size) if t.data else None for t in tasks]
        self._bandwidth = sc.network.bandwidth
        self._latency = ctx.mean_delay

    def observe(self, index: int, task: Task) -> None:
        """A completion report from agent ``index``: one more task of its type done there."""
        key = (index, task.tidx)
        n = self.heard[key] = self.heard.get(key, 0) + 1
        table = self._tables.get(task.tidx)
        lg = self._learning[index] if index < len(self._learning) else None
        if table is not None and lg is not None and self.params.history:
            v = self._profiles[index]
            p0 = v.proficiency(table[2]) if table[2] else 1.0
            old = table[0][index]
            table[0][index] = 1.0 / (v.speed * learned(p0, n, *lg))
            if table[0][index] != old:
                for pool in self._parted.get(task.tidx, {}).values():
                    pool.reclass(task.tidx, pool.views[index])

    def _table(self, tidx: int, skills: tuple[str, ...]) -> tuple[list[float], list[float]]:
        """The static parts of every agent's score for type ``tidx`` (built once)."""
        got = self._tables.get(tidx)
        if got is None:
            w = self.params
            inverse, extra = [], []
            for i, v in enumerate(self._profiles):
                p = v.proficiency(skills) if skills else 1.0
                lg = self._learning[i]
                if lg is not None and w.history:
                    p = learned(p, self.heard.get((i, tidx), 0), *lg)
                inverse.append(1.0 / (v.speed * p) if p > 0 else float("inf"))
                moved, liked = self._moved(tidx, i)
                extra.append(w.transfer * moved - w.affinity * liked)
            got = self._tables[tidx] = (inverse, extra, skills)
            self._keys[tidx] = partial(_class_of, inverse, extra)
        return got[0], got[1]

    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView:
        w = self.params
        d = w.sample
        if d and len(candidates) > d:
            candidates = self._sampled(candidates, d)
        tidx: int = getattr(task, "tidx", -1)
        work = task.work * w.proficiency
        load = w.load
        if self._profiles and 0 <= tidx < len(self._data):
            inverse, extra = self._table(tidx, task.skills)
            if isinstance(candidates, Pool) and load > 0:
                got = self._indexed(candidates, tidx, work, load, inverse, extra)
                if got is not None:
                    self._last = (got[1], task.work, got[0], tidx, task.skills)
                    return got[0]
            scores = [
                work * inverse[a.index] + load * a.work_outstanding / a.capacity + extra[a.index]
                for a in candidates
            ]
        else:  # not bound to a run (a bare check): proficiency and load only
            inverse = extra = []
            scores = [
                work / (a.speed * a.proficiency(task.skills))
                + load * a.work_outstanding / a.capacity
                for a in candidates
            ]
        chosen = self._argmin(candidates, scores)
        self._last = (min(scores), task.work, chosen, tidx, task.skills)
        return chosen

    def _indexed(
        self,
        pool: Pool,
        tidx: int,
        work: float,
        load: float,
        inverse: list[float],
        extra: list[float],
    ) -> tuple[AgentView, float] | None:
        """The scan's choice and least score, class by class (None: the pool's views do not
        report their load). Within a class the score is monotone in the outstanding work,
        so its minimisers are a prefix of the class's values, found without a scan."""
        part = pool.partition(tidx, self._keys[tidx])
        if part is None:
            return None
        parted = self._parted.setdefault(tidx, {})
        if id(pool) not in parted:
            parted[id(pool)] = pool
        best = 0.0
        found: list[tuple[tuple[float, int, float], Any]] = []
        for c, ix in part.classes.items():
            inv, cap, ext = c
            score = work * inv + load * ix.minimum() / cap + ext
            if not found or score < best:
                best, found = score, [(c, ix)]
            elif score == best:
                found.append((c, ix))
        if not found:
            return None
        runs: list[list[int]] = []
        for (inv, cap, ext), ix in found:
            # The class's values scoring ``best``: a prefix of them in order, so a walk of
            # its heap pruned where the (scan's) sum exceeds ``best``.
            service = work * inv
            heap, buckets = ix.heap, ix.buckets
            n, todo = len(heap), [0]
            while todo:
                j = todo.pop()
                v = heap[j]
                if service + load * v / cap + ext <= best:
                    if v in buckets:
                        runs.append(buckets[v])
                    k = 2 * j + 1
                    if k < n:
                        todo.append(k)
                        if k + 1 < n:
                            todo.append(k + 1)
        if len(runs) == 1:
            indices = runs[0]
            if len(indices) == 1:
                return pool.views[indices[0]], best
        else:
            indices = sorted(i for run in runs for i in run)
        return self._tie(Tied(indices, pool.views)), best

    def _sampled(self, candidates: Sequence[AgentView], d: int) -> list[AgentView]:
        """``d`` distinct candidates drawn uniformly (rejection: ``d`` is small next to n)."""
        n = len(candidates)
        picked: list[int] = []
        while len(picked) < d:
            i = self._pick(n)
            if i not in picked:
                picked.append(i)
        return [candidates[i] for i in picked]

    def _moved(self, tidx: int, index: int) -> tuple[float, float]:
        """(transfer time, 1 if preferred) of type ``tidx`` on agent ``index``."""
        where = self._data[tidx]
        node = self._nodes[index]
        moved = 0.0
        if where is not None and where[0] != node:
            moved = transfer_time(where[1], self._bandwidth, self._latency(where[0], node))
        return moved, 1.0 if self._affinity[tidx] & self._tags[index] else 0.0

    @property
    def reason(self) -> str:
        """The last decision's score and its parts (built only when someone reads it)."""
        if self._last is None:
            return ""
        score, work, a, tidx, skills = self._last
        w = self.params
        bound = bool(self._profiles) and 0 <= tidx < len(self._data)
        if bound:
            service = work * self._table(tidx, skills)[0][a.index]
            moved, liked = self._moved(tidx, a.index)
        else:
            service, moved, liked = work / (a.speed * a.proficiency(skills)), 0.0, 0.0
        return (
            f"score {score:.4g} = service {service:.4g} x{w.proficiency:g} + load "
            f"{a.work_outstanding / a.capacity:.4g} x{w.load:g} + transfer {moved:.4g} "
            f"x{w.transfer:g} - affinity {liked:g} x{w.affinity:g}"
        )


def _class_of(inverse: list[float], extra: list[float], v: Any) -> tuple[float, int, float]:
    """An agent's class for a task type: what its score holds but the outstanding work."""
    return inverse[v.index], v.capacity, extra[v.index]


def _no_latency(a: str, b: str) -> float:
    return 0.0


def role_tiers(ctx: Any) -> dict[tuple[str, ...], tuple[str, str, frozenset[str]]]:
    """The fallback tiers of the scenario's task types (empty without fallbacks)."""
    return fallback_tiers(ctx.scenario, ctx.task_skills) if ctx.scenario.roles else {}


def hook_roles(coord: Any, ctx: Any, tiers: dict[tuple[str, ...], Any]) -> None:
    """Wire roles into a queueing coordinator, at no cost when unused: a router that
    learns from reports hears every completion; fallback tiers filter the candidates."""
    router = coord.router
    if hasattr(router, "bind"):
        router.bind(ctx)
    observe = getattr(router, "observe", None)
    if observe is not None:
        coord.on_done = partial(_observed_done, observe, coord.on_done)
    if tiers:
        coord.candidates = partial(_tiered, coord, tiers, coord.candidates, set())


def _observed_done(
    observe: Callable[[int, Task], None], done: Any, sender: Any, task: Task
) -> None:
    if task.state == DONE:
        observe(sender.index, task)
    done(sender, task)


def _tiered(
    coord: Any, tiers: dict[tuple[str, ...], Any], base: Any, told: set[tuple[int, int]], task: Task
) -> list[Any]:
    """Holders of the task's role if any is available, else its substitutes (logged once
    per task and attempt: a waiting task's candidates may be asked for more than once)."""
    got = base(task)
    tier = tiers.get(task.skills)
    if tier is None or not got:
        return list(got)
    role, substitute, groups = tier
    top = [v for v in got if v.group in groups]
    if top:
        return top
    if coord.ctx.tracing and (task.id, task.attempts) not in told:
        told.add((task.id, task.attempts))
        coord.ctx.log(
            "fallback",
            f"task {task.id}: no agent of role {role} available; {len(got)} of role "
            f"{substitute} offered at its penalty",
            task,
            role=role,
            substitute=substitute,
        )
    return got

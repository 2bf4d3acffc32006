"""Physics of roles, experience and data locality (only in runs that configure them).

* Roles become skills: a task needing role R needs the pseudo-skill ``role:R``
  (:data:`~kossim.sim.agent.ROLE_MARK`), which holders of R have at 1 and
  holders of R's fallback role at its penalty; the roles' own skills are
  granted to their holders. Eligibility, service time and the coordinator's
  candidate filter then follow from the existing skill machinery.
* Experience: a :class:`RoleAgent` counts the tasks of each type it has
  completed, and with ``learning`` serves a type at ``p(n) = p0 + (cap - p0)
  (1 - exp(-n / tau))`` (never below ``p0``), ``n`` counted when a task starts.
* Data locality: a task whose input lives on another node first holds its slot
  for the transfer (``size / bandwidth`` plus the path's mean latency), then
  serves; a task staged on an agent is not transferred there again.

The world swaps in :class:`RoleAgent` only when a scenario uses these, so the
default path pays nothing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from simpy.events import Timeout

from kossim.analysis.metrics import ROLE_METRICS
from kossim.runspec import MetricRow
from kossim.sim.agent import ROLE_MARK, Agent
from kossim.sim.task import DONE, RUNNING, Task

if TYPE_CHECKING:
    from kossim.config.models import AgentGroup, Scenario, TaskType
    from kossim.sim.network import Net
    from kossim.sim.world import World

__all__ = [
    "RoleAgent",
    "RolePhysics",
    "agent_skills",
    "fallback_tiers",
    "learned",
    "role_metrics",
    "task_skills",
    "transfer_time",
    "uses_roles",
]


def learned(p0: float, n: int, cap: float, tau: float) -> float:
    """Proficiency after ``n`` completed tasks of a type: rises from ``p0`` toward ``cap``."""
    if cap <= p0:
        return p0
    return p0 + (cap - p0) * (1.0 - math.exp(-n / tau))


def transfer_time(size: float, bandwidth: float | None, latency: float) -> float:
    """Moving ``size`` of input over a path: ``size / bandwidth`` plus its ``latency``."""
    return (size / bandwidth if bandwidth else 0.0) + latency


def uses_roles(sc: Scenario) -> bool:
    return bool(
        sc.roles
        or any(g.learning for g in sc.agents)
        or any(t.data or t.affinity or t.role for t in sc.workload.tasks)
    )


def task_skills(t: TaskType) -> tuple[str, ...]:
    """What a task of type ``t`` needs: its skills and the mark of its role."""
    marks = [ROLE_MARK + t.role] if t.role else []
    return tuple(sorted([*t.skills, *marks]))


def agent_skills(g: AgentGroup, sc: Scenario) -> dict[str, float]:
    """An agent's skills: its group's, its roles' (at 1 unless the group sets them), and a
    mark for each role it holds (1) or may stand in for (the fallback's penalty)."""
    skills = dict(g.skills)
    for r in g.roles:
        for s in sc.roles[r].skills:
            skills.setdefault(s, 1.0)
        skills[ROLE_MARK + r] = 1.0
    for name, spec in sc.roles.items():
        fb = spec.fallback
        if fb is not None and fb.role in g.roles and name not in g.roles:
            skills[ROLE_MARK + name] = fb.penalty
    return skills


def fallback_tiers(
    sc: Scenario, task_skill_sets: list[tuple[str, ...]]
) -> dict[tuple[str, ...], tuple[str, str, frozenset[str]]]:
    """For each task skill set whose role has a fallback: (role, substitute, the groups
    holding the role). The coordinator offers substitutes only when no holder is available."""
    tiers = {}
    for t, skills in zip(sc.workload.tasks, task_skill_sets, strict=True):
        fb = sc.roles[t.role].fallback if t.role else None
        if t.role and fb is not None:
            groups = frozenset(g.group for g in sc.agents if t.role in g.roles)
            tiers[skills] = (t.role, fb.role, groups)
    return tiers


class RolePhysics:
    """The run's static facts of roles and data, and what each completed task met."""

    __slots__ = ("_transfer", "affinity", "bandwidth", "data", "latency", "records", "roles")

    def __init__(self, sc: Scenario, net: Net) -> None:
        tasks = sc.workload.tasks
        self.roles = [t.role for t in tasks]
        self.data = [(t.data.node, t.data.size) if t.data else None for t in tasks]
        self.affinity = [frozenset(t.affinity) for t in tasks]
        self.bandwidth = sc.network.bandwidth
        self.latency = net.mean_delay
        self._transfer: dict[tuple[int, str], float] = {}
        # task id -> (transfer time, ran where its data is, by a substitute, by a preferred
        # agent, proficiency of its last service segment)
        self.records: dict[int, tuple[float, bool, bool, bool, float]] = {}

    def transfer(self, tidx: int, node: str) -> float:
        """Time to bring a task of type ``tidx``'s input to ``node`` (0 when it is there)."""
        key = (tidx, node)
        got = self._transfer.get(key)
        if got is None:
            where = self.data[tidx]
            if where is None or where[0] == node:
                got = 0.0
            else:
                got = transfer_time(where[1], self.bandwidth, self.latency(where[0], node))
            self._transfer[key] = got
        return got


class RoleAgent(Agent):
    """An agent with a record of completed tasks per type, learning, and data transfers."""

    __slots__ = ("history", "learning", "physics", "roles", "staged", "tags")

    def __init__(self, world: World, profile: object, node: str, g: AgentGroup) -> None:
        super().__init__(world, profile, node)  # type: ignore[arg-type]
        self.physics: RolePhysics = world.role_physics  # type: ignore[assignment]
        self.history: dict[int, int] = {}
        self.learning = (g.learning.cap, g.learning.tau) if g.learning else None
        self.roles = frozenset(g.roles)
        self.tags = frozenset((g.group, node))  # what an affinity may name
        self.staged: dict[int, float] = {}  # task id -> transfer time paid to bring it here

    def rate_for(self, task: Task) -> float:
        """Work per unit time on ``task`` now: speed x proficiency, after experience."""
        p = self.profile
        p0 = p.proficiency(task.skills) if task.skills else 1.0
        if self.learning is not None:
            p0 = learned(p0, self.history.get(task.tidx, 0), *self.learning)
        return p.speed * p0

    def start(self, task: Task) -> None:
        w = self.world
        if task.cancelled:
            w.ledger.discard(self, task)
            return
        now = w.env._now
        if self.up:
            self.area += len(self.running) * (now - self.last)
        self.last = now
        self.running.append(task)
        if task.fresh:
            task.fresh = False
            task.attempts += 1
        if task.start < 0:
            task.start = now
        task.state = RUNNING
        task.agent = self.index
        task.seg = now
        delay = 0.0 if task.id in self.staged else self.physics.transfer(task.tidx, self.node)
        if delay > 0:  # the slot is held while the input comes: no work is done
            task.rate = 0.0
            log = w.kernel.log
            if log is not None:
                where = self.physics.data[task.tidx]
                log.task(
                    now, "transfer", task, self.name,
                    f"task {task.id} input from {where[0] if where else '?'} to {self.node}: "
                    f"{delay:.4g}",
                )  # fmt: skip
            ev = task.ev = Timeout(w.env, delay, (task, delay))
            ev.callbacks.append(self._staged)
            return
        rate = task.rate = self.rate_for(task)
        ev = task.ev = Timeout(w.env, task.remaining / rate, task)
        ev.callbacks.append(self._done)

    def _staged(self, ev: Timeout) -> None:
        task, delay = ev._value
        if task.ev is not ev:
            return  # interrupted: the transfer starts over when the task starts again
        self.staged[task.id] = self.staged.get(task.id, 0.0) + delay
        task.seg = self.world.env._now
        rate = task.rate = self.rate_for(task)
        ev2 = task.ev = Timeout(self.world.env, task.remaining / rate, task)
        ev2.callbacks.append(self._done)

    def _done(self, ev: Timeout) -> None:
        task: Task = ev._value
        if task.ev is not ev:
            return
        ph = self.physics
        t = task.tidx
        self.history[t] = self.history.get(t, 0) + 1
        role, data = ph.roles[t], ph.data[t]
        ph.records[task.id] = (
            self.staged.pop(task.id, 0.0),
            data is None or data[0] == self.node,
            role is not None and role not in self.roles,
            bool(ph.affinity[t] & self.tags),
            task.rate / self.profile.speed,
        )
        super()._done(ev)


def role_metrics(ph: RolePhysics, cols: dict[str, np.ndarray], types: list[str]) -> list[MetricRow]:
    """Rows of :data:`ROLE_METRICS` over measured completed tasks, overall and per type."""
    sel = cols["measured"] & (cols["state"] == DONE)
    ids, tidx = cols["id"][sel], cols["tidx"][sel]
    recs = [ph.records.get(int(i)) for i in ids]
    rows: list[MetricRow] = []
    scopes: list[tuple[str, list[int] | None]] = [("all", None)]
    scopes += [(f"type={name}", [i]) for i, name in enumerate(types)]
    for scope, only in scopes:
        mine = [
            (int(t), r)
            for t, r in zip(tidx, recs, strict=True)
            if r is not None and (only is None or int(t) in only)
        ]
        roled = [r for t, r in mine if ph.roles[t] is not None]
        data = [r for t, r in mine if ph.data[t] is not None]
        affine = [r for t, r in mine if ph.affinity[t]]
        fallbacks = float(sum(r[2] for r in roled))
        values = {
            "fallbacks": fallbacks,
            "fallback_share": fallbacks / len(roled) if roled else math.nan,
            "transfer_time_mean": _mean([r[0] for r in data]),
            "local_share": _mean([float(r[1]) for r in data]),
            "affinity_share": _mean([float(r[3]) for r in affine]),
            "proficiency_mean": _mean([r[4] for _, r in mine]),
        }
        rows += [(name, scope, values[name]) for name in ROLE_METRICS]
    return rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan

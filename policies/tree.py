"""Delegation trees: the coordinator is the root manager of a hierarchy of managers.

``coordinator: {id: tree, branching: 4, ...}`` organises the agents under a
tree of managers (generated from ``branching``, or given as ``hierarchy``:
``manager -> children``, rooted at ``coordinator``) and delegates each task
down it, one decision per level (see :mod:`policies.tree_manager` for the
protocol). The root is this coordinator, on the coordinator's node; it
spawns every other manager (``Context.spawn``) on the node of the first
agent of its subtree. ``branching: null`` is flat central dispatch with the
same decision model: one manager scanning every agent.

Agents still report endings to the coordinator (``done``: the result is
delivered); under ``requeue`` the tasks lost with an agent re-enter at the
root when the detector's suspicion or the agent's ``repaired`` arrives.

Metrics: ``manager_utilization`` and ``manager_decisions`` (decisions per
unit time), scope ``manager=NAME`` and ``all`` (the busiest manager: the
bound a tree promises), ``rerouted`` (tasks given back by failed managers),
``view_age_mean`` (how old the facts behind a delegation were), ``tree_depth``;
with ``entry: leaves`` (tasks enter at a lowest manager and climb only for want of
room, see :mod:`policies.tree_entry`) ``escalated`` and ``escalation_share``;
hops per task are the decisions on its route (``hops_mean``, ``hops_share``),
``delegation_delay_mean`` its time in the tree before it leaves for an agent.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from kossim.dists import Distribution
from kossim.policy import Params
from kossim.sim.kernel import Actor
from kossim.sim.task import WAITING, Task
from policies.tree_entry import Escalating
from policies.tree_manager import Directory
from policies.tree_shape import ROOT, Shape, explicit_shape, generated_shape

__all__ = ["ManagerFailures", "Tree", "TreeParams"]


class ManagerFailures(Params):
    """An up/down clock per manager below the root (the root is the coordinator)."""

    up: Distribution
    down: Distribution


class TreeParams(Params):
    branching: int | None = Field(
        default=4,
        ge=2,
        description="children per manager of a generated tree; null: one manager over "
        "every agent (flat central dispatch)",
    )
    hierarchy: dict[str, list[str]] | None = Field(
        default=None,
        description="an explicit tree: manager -> children (managers or agent names), "
        "rooted at 'coordinator'; replaces branching",
    )
    report_interval: float = Field(
        default=0.5, gt=0, description="period of the load reports sent up the tree"
    )
    suspect_after: float | None = Field(
        default=None,
        gt=0,
        description="silence after which a child is believed down; default 3 report intervals",
    )
    decision_time: float = Field(default=0.0, ge=0, description="decision work per task")
    scan_time: float = Field(
        default=0.0, ge=0, description="decision work per child the manager scans, per task"
    )
    decision_capacity: int = Field(default=1, ge=1, description="concurrent decisions")
    manager_failures: ManagerFailures | None = Field(
        default=None, description="failure clock of every manager below the root"
    )
    entry: Literal["root", "leaves"] = Field(
        default="root",
        description="where tasks enter: the root (it decides every task), or a lowest "
        "manager drawn at random, escalating up only what its subtree has no room for",
    )
    room: float = Field(
        default=1.0,
        gt=0,
        description="entry: leaves: a child has room when its (load + 1) / rate is at most this",
    )

    @model_validator(mode="after")
    def _one_shape(self) -> TreeParams:
        if self.hierarchy is not None:
            if "branching" in self.model_fields_set:
                raise ValueError("give branching or hierarchy, not both")
            if ROOT not in self.hierarchy:
                raise ValueError(f"hierarchy: the root manager must be named {ROOT!r}")
        return self


class Tree(Escalating):
    """The root manager of a delegation tree, and the coordinator agents report to."""

    kind = "coordinator"
    id = "tree"
    description = "delegate down a tree of managers judged from periodic load reports"
    Params = TreeParams

    def on_start(self, ctx: Any) -> None:
        shape = self._shape(ctx)
        directory = _directory(shape, ctx)
        self.join(directory, ROOT)
        super().on_start(ctx)
        self.shape = shape
        self.max_attempts = ctx.max_attempts
        self.backing_off: dict[Task, None] = {}  # bounced or returned, about to re-enter
        nodes = {a.name: a.node for a in ctx.agents}
        actors = {ROOT: ctx.actor}
        for name in shape.managers[1:]:
            manager = Escalating(self.params, self.rng).join(directory, name)
            actors[name] = ctx.spawn("manager", name, nodes[shape.agents_under(name)[0]], manager)
        # The front door: the lowest managers (no manager below), or None (the root decides).
        lowest = [m for m, cs in shape.children.items() if not any(c in shape.children for c in cs)]
        self.doors = [actors[m] for m in lowest] if self.params.entry == "leaves" else None
        if self.doors is not None and len(self.doors) == 1 and lowest[0] == ROOT:
            self.doors = None  # flat: the root is the only manager
        if ctx.tracing:
            ctx.log(
                "tree",
                f"{len(shape.children)} managers, depth {shape.depth}, "
                f"over {len(ctx.agents)} agents",
            )

    def _shape(self, ctx: Any) -> Shape:
        names = [a.name for a in ctx.agents]
        p = self.params
        if p.hierarchy is not None:
            return explicit_shape(p.hierarchy, names)
        return generated_shape(names, p.branching)

    # -- tasks entering the tree -------------------------------------------------------------
    def on_arrival(self, sender: Any, task: Task) -> None:
        self.enter(task)

    def enter(self, task: Task) -> None:
        """A task enters the tree (its delegation delay starts): at the root, or
        (``entry: leaves``) at a lowest manager drawn uniformly at random."""
        task.hops = 0
        ctx = self.ctx
        task.handoff -= ctx.now
        doors = self.doors
        if doors is None:
            self.receive(task)
            return
        door = doors[int(ctx.rng.integers(len(doors)))]
        if ctx.tracing:
            ctx.log("entry", f"task {task.id} enters at {door.name}", task, to=door.name)
        ctx.send(door, "entry", task)

    # -- what agents and the detector report ---------------------------------------------------
    def on_done(self, sender: Actor, task: Task) -> None:
        """A result delivered (managers learn loads from reports, not from endings)."""

    def on_returned(self, sender: Actor, task: Task) -> None:
        """A preempted task comes back: it enters the tree again (not inside the agent's
        preemption, whose slot is free only until the displacing task starts)."""
        self._later(task, 0.0)

    def on_bounce(self, sender: Actor, news: tuple[Task, int]) -> None:
        """A task sent to an agent that was down (``requeue``) enters the tree again after
        a report interval: the managers that chose the agent have not yet heard it is
        down, and would choose it again at once."""
        self._later(news[0], self.interval)

    def _later(self, task: Task, delay: float) -> None:
        task.state = WAITING
        self.backing_off[task] = None
        self.ctx.after(delay, "reenter", task)

    def on_reenter(self, sender: None, task: Task) -> None:
        del self.backing_off[task]
        self.enter(task)

    def held(self) -> list[Task]:
        return [*super().held(), *self.backing_off]

    def on_suspect(self, sender: Actor, news: tuple[Actor, int, bool]) -> None:
        self._reclaim(news[0])

    def on_trust(self, sender: Actor, news: tuple[Actor, int]) -> None:
        """Managers judge agents up from their reports."""

    def on_repaired(self, sender: Actor, incarnation: int) -> None:
        self._reclaim(sender)

    def _reclaim(self, agent: Actor) -> None:
        """``requeue``: the tasks lost with ``agent`` re-enter, or are abandoned at their
        attempt limit."""
        ctx = self.ctx
        for task in ctx.reclaim(agent):
            if task.fresh and task.attempts >= self.max_attempts:
                ctx.abandon(task)
            else:
                self.enter(task)

    # -- measurements ----------------------------------------------------------------------------
    def metric_rows(self, start: float, end: float) -> list[tuple[str, str, float]]:
        rows: list[tuple[str, str, float]] = []
        util_max = rate_max = rerouted = 0.0
        ages = []
        for name, manager in self.directory.stats.items():
            ages.append(manager.view_ages(start, end))
            util, rate, moved = manager.measured(start, end)
            rows.append(("manager_utilization", f"manager={name}", util))
            rows.append(("manager_decisions", f"manager={name}", rate))
            util_max = max(util_max, util) if util == util else util_max
            rate_max = max(rate_max, rate) if rate == rate else rate_max
            rerouted += moved
        rows.append(("manager_utilization", "all", util_max))
        rows.append(("manager_decisions", "all", rate_max))
        rows.append(("rerouted", "all", rerouted))
        age = np.concatenate(ages)
        rows.append(("view_age_mean", "all", float(age.mean()) if age.size else float("nan")))
        rows.append(("tree_depth", "all", float(self.shape.depth)))
        if self.doors is not None:
            counts = [m.entries(start, end) for m in self.directory.stats.values()]
            entered = sum(c[0] for c in counts)
            rows.append(("escalated", "all", float(sum(c[1] for c in counts))))
            share = sum(c[2] for c in counts) / entered if entered else float("nan")
            rows.append(("escalation_share", "all", share))
        return rows


def _directory(shape: Shape, ctx: Any) -> Directory:
    """Static facts per subtree: the task skill sets it can serve and its configured rate."""
    profiles = {p.name: p for p in ctx.profiles}
    needs = sorted(set(ctx.task_skills))
    covers: dict[str, frozenset[tuple[str, ...]]] = {}
    rate: dict[str, float] = {}

    def fill(name: str) -> None:
        if name in shape.children:
            for c in shape.children[name]:
                fill(c)
            covers[name] = frozenset().union(*(covers[c] for c in shape.children[name]))
            rate[name] = sum(rate[c] for c in shape.children[name])
        else:
            p = profiles[name]
            covers[name] = frozenset(s for s in needs if not s or p.proficiency(s) > 0)
            rate[name] = p.capacity * p.speed

    fill(ROOT)
    return Directory(shape.children, covers, rate, shape.level)

"""Experimental mode: a learned reputation gates what unproven agents may do.

The ``trust_gated`` coordinator keeps a Beta reputation ``(alpha, beta)`` per
agent, learned only from the results that reach it in ``done`` messages. An
agent's configured ``trust`` is its prior mean, worth ``prior_strength``
outcomes: ``alpha = s x trust``, ``beta = s x (1 - trust)``. A verified good
result adds 1 to alpha, a bad one 1 to beta; the reputation is the posterior
mean ``alpha / (alpha + beta)``.

Each agent is *trusted* (reputation at or above ``promote``), *on probation*
(between), or *quarantined* (below ``quarantine``: it receives nothing more).
An agent on probation that reaches ``promote`` is promoted for good; any
agent whose reputation falls below the floor is quarantined for good.

What an agent on probation may do depends on ``mode``:

* ``low_criticality``: it takes only tasks of types marked
  ``criticality: low`` (trusted agents take everything). It learns only from
  audits: each delivered result is checked with probability ``verify``.
* ``shadow``: every task goes to a trusted agent; when an agent on probation
  has a free slot (as far as the coordinator knows) it also runs a *shadow*
  copy of the task (the ledger's copies, never racing the task). When both
  results are in they are compared: equal results (both good: bad results are
  wrong each in its own way) count as a good outcome for both agents;
  different ones are checked, and each agent learns the truth of its own.
  The shadow's result is never delivered; its service time is ``shadow_work``.

Every promotion, quarantine, shadow launch, audit and verdict is logged
with its reason. Metrics: ``bad_caught`` (bad results identified; scope
``via=shadow`` for shadows' results never delivered, ``via=audit`` for
delivered results found bad), ``verifications``, ``promoted`` and
``quarantined`` (per group too), ``promotion_tasks`` and
``quarantine_tasks`` (results an agent reported before it was promoted or
quarantined: the mean over agents, and per agent), ``promotion_outcomes`` and
``quarantine_outcomes`` (the verified outcomes among them, which alone move
the reputation), ``reputation`` per agent (final posterior mean).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from kossim.dists import Sampler, Uniform
from kossim.errors import FieldError
from kossim.policy import Params
from kossim.runspec import MetricRow
from kossim.sim.agent import AgentState
from kossim.sim.kernel import Actor
from kossim.sim.task import DONE, Task
from policies.candidate_pools import gated
from policies.coordinator import Queueing

__all__ = ["TrustGated", "TrustGatedParams", "promotion_bound", "quarantine_bound"]

PROBATION, TRUSTED, QUARANTINED = 0, 1, 2
STATUS_NAMES = ("probation", "trusted", "quarantined")
_NAN = float("nan")
_GATES = {"trusted": (TRUSTED,), "admitted": (TRUSTED, PROBATION), "probation": (PROBATION,)}


class TrustGatedParams(Params):
    mode: Literal["shadow", "low_criticality"] = Field(
        default="shadow",
        description="what agents on probation do: run shadows of trusted agents' tasks, "
        "or take low-criticality tasks only",
    )
    promote: float = Field(
        default=0.9, gt=0, le=1, description="reputation (posterior mean) that ends probation"
    )
    quarantine: float = Field(
        default=0.6, ge=0, lt=1, description="reputation below which an agent gets nothing"
    )
    prior_strength: float = Field(
        default=10.0, gt=0, description="outcomes the prior (mean: the agent's trust) is worth"
    )
    verify: float = Field(
        default=0.0, ge=0, le=1, description="probability that a delivered result is audited"
    )

    @model_validator(mode="after")
    def _ordered(self) -> TrustGatedParams:
        if self.quarantine >= self.promote:
            raise FieldError(
                f"the quarantine floor must be below the promotion threshold ({self.promote:g})",
                "quarantine",
                got=self.quarantine,
            )
        return self


def promotion_bound(trust: float, strength: float, promote: float, bad: int = 0) -> int:
    """Good outcomes an agent of prior mean ``trust`` needs, beside ``bad`` bad ones, for
    its posterior mean to reach ``promote``: the least n with
    ``(s trust + n) / (s + n + bad) >= promote``."""
    a0 = strength * trust
    n = max(0, -int(-(promote * (strength + bad) - a0) // (1 - promote))) if promote < 1 else 0
    while (a0 + n) / (strength + n + bad) < promote - 1e-12:
        n += 1
    while n > 0 and (a0 + n - 1) / (strength + n - 1 + bad) >= promote - 1e-12:
        n -= 1
    return n


def quarantine_bound(trust: float, strength: float, floor: float, good: int = 0) -> int:
    """Bad outcomes an agent of prior mean ``trust`` needs, beside ``good`` good ones, for
    its posterior mean to fall below ``floor``: the least k with
    ``(s trust + good) / (s + good + k) < floor``."""
    a0 = strength * trust + good
    k = 0
    while a0 / (strength + good + k) >= floor:
        k += 1
    return k


class _Comparison:
    """A task and its shadow, until both results are in."""

    __slots__ = ("primary", "primary_agent", "primary_bad", "shadow", "shadow_agent")

    def __init__(self, primary: Task, shadow: Task, shadow_agent: int) -> None:
        self.primary = primary
        self.shadow = shadow
        self.shadow_agent = shadow_agent
        self.primary_agent = -1  # known when its result is in
        self.primary_bad: bool | None = None


class TrustGated(Queueing):
    """Route by learned reputation: probation, promotion, quarantine; shadows or low tasks."""

    kind = "coordinator"
    id = "trust_gated"
    speculates = False  # dispatch of its own: no backup copies of stragglers
    description = "Beta reputation per agent; unproven agents run shadows or low-criticality tasks"
    Params = TrustGatedParams
    sends: tuple[str, ...] = ("task",)
    #: It judges results, so every run reports result quality, bad agents or not.
    judges_results = True

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        p: TrustGatedParams = self.params
        self.listing = False  # who may take a task depends on it: no shared free list
        self.shadowing = p.mode == "shadow"
        self.verify = p.verify
        self._u = Sampler(Uniform(dist="uniform", low=0.0, high=1.0), self.rng)
        views = self.views
        self.alpha = [p.prior_strength * v.trust for v in views]
        self.beta = [p.prior_strength * (1.0 - v.trust) for v in views]
        self.status = [self._status(i, PROBATION) for i in range(len(views))]
        self.on_probation = [v for v in views if self.status[v.index] == PROBATION]
        self.started_on_probation = [v.index for v in self.on_probation]
        low = [t.criticality == "low" for t in ctx.scenario.workload.tasks]
        self.low_ok = low if not self.shadowing else [False] * len(low)
        self.reported = [0] * len(views)  # results each agent reported
        # agent -> (results it reported, verified outcomes) when promoted / quarantined
        self.promoted_after: dict[int, tuple[int, int]] = {}
        self.quarantined_after: dict[int, tuple[int, int]] = {}
        if self.pull and not self.shadowing and not self.split:
            # A head no free agent may take lets a low-criticality task by (_dispatch_other).
            self.uniform_skills = False
        self.pending: dict[int, _Comparison] = {}  # task id -> comparison under way
        self.caught = {"shadow": 0, "audit": 0}
        self.verifications = 0
        if ctx.tracing:
            for v in views:
                ctx.log(
                    "reputation",
                    f"{v.name} starts {STATUS_NAMES[self.status[v.index]]}: prior mean "
                    f"{v.trust:g} worth {p.prior_strength:g} outcomes",
                    agent=v.name,
                    value=v.trust,
                )

    def _mean(self, i: int) -> float:
        a, b = self.alpha[i], self.beta[i]
        return a / (a + b)

    def _status(self, i: int, current: int) -> int:
        if current == QUARANTINED:
            return QUARANTINED
        mean = self._mean(i)
        if mean < self.params.quarantine:
            return QUARANTINED
        if current == TRUSTED or mean >= self.params.promote:
            return TRUSTED
        return PROBATION

    # -- who may take a task ----------------------------------------------------------------
    # Pools gated by standing (policies.candidate_pools), kept as agents are promoted or
    # quarantined: "trusted", "admitted" (trusted or on probation), "probation".
    def _gates_load(self, ctx: Any, pull: bool) -> bool:
        return True  # free slots gate the shadows' candidates (and all of them under pull)

    def _admits(self, view: AgentState, gate: str) -> bool:
        return self.status[view.index] in _GATES[gate]

    def _gate_of(self, task: Task) -> str:
        return "admitted" if self.low_ok[task.tidx] else "trusted"

    @gated
    def candidates(self, task: Task) -> list[AgentState]:
        """The up, skilled (and, under pull, free) agents allowed this task: trusted ones,
        and agents on probation for a low-criticality task (``low_criticality`` mode)."""
        return self._gated(task.skills, free=self.pull, gate=self._gate_of(task))

    def _dispatch_other(self) -> bool:
        """Pull, low-criticality mode: the head waits for a trusted agent, so send the first
        waiting low-criticality task (in the queue's order) to a free agent on probation.

        A scan of the queue, made only while its head is blocked and such an agent is free.
        """
        if self.split:
            return super()._dispatch_other()
        if not self._gated(None, free=True, gate="probation"):
            return False
        low = self.low_ok
        waiting = [t for t in self.queue if low[t.tidx]]
        if not waiting:
            return False
        if self.discipline.fifo:
            task = waiting[0]
        else:
            key = self.discipline.key
            task = min(waiting, key=lambda t: (key(t), t.id, t.copy))
        cands = self.candidates(task)
        if not cands:
            return False
        self.queue.remove(task)
        self._send(self._select(task, cands), task)
        return True

    def _send(self, view: AgentState, task: Task) -> None:
        super()._send(view, task)
        if (
            self.shadowing
            and self.on_probation
            and task.copy == 0
            and task.id not in self.pending
            and self.status[view.index] == TRUSTED
        ):
            self._launch_shadow(task, view)

    def _launch_shadow(self, task: Task, primary: AgentState) -> None:
        """Run a shadow of ``task`` on an agent on probation with a free slot, if any."""
        cands = self._gated(task.skills, free=True, gate="probation")
        if not cands:
            return
        ctx = self.ctx
        chosen = self.router.select(task, cands, ctx.now)
        copy = ctx.shadow(task)
        self.pending[task.id] = _Comparison(task, copy, chosen.index)
        if ctx.tracing:
            ctx.log(
                "shadow",
                f"task {task.id} on {primary.name} (trusted); shadow on {chosen.name} "
                f"(probation, reputation {self._mean(chosen.index):.3f})",
                task,
                agent=chosen.name,
            )
        Queueing._send(self, chosen, copy)

    # -- results ------------------------------------------------------------------------------
    def on_done(self, sender: Actor, task: Task) -> None:
        cmp = self.pending.get(task.id) if self.pending else None
        if cmp is not None:
            self._comparing(sender.index, task, cmp)
        elif task.state == DONE:
            self.reported[sender.index] += 1
            if self.verify and self._u() < self.verify:
                self._audit(sender.index, task)
        super().on_done(sender, task)

    def _audit(self, i: int, task: Task) -> None:
        self.verifications += 1
        if task.bad and task.measured:
            self.caught["audit"] += 1
        ctx = self.ctx
        if ctx.tracing:
            name = self.views[i].name
            ctx.log(
                "audit",
                f"task {task.id}: result of {name} checked, {_word(task.bad)}",
                task,
                agent=name,
            )
        self._learn(i, task.bad, task, "audit")

    def _comparing(self, i: int, task: Task, cmp: _Comparison) -> None:
        """A result (or an ending without one) of a task under comparison."""
        if task.state == DONE:
            self.reported[i] += 1
            if task is cmp.shadow:
                cmp.shadow_agent = i  # where it ran (a reclaimed shadow may move)
            else:
                cmp.primary_agent, cmp.primary_bad = i, task.bad
        elif task is cmp.shadow or (task is cmp.primary and task.end >= 0):
            del self.pending[task.id]  # abandoned: nothing to compare
            if self.ctx.tracing:
                self.ctx.log(
                    "verdict", f"task {task.id}: no verdict, a side ended unfinished", task
                )
            return
        if cmp.primary_bad is None or cmp.shadow.state != DONE:
            return
        del self.pending[task.id]
        self._compare(cmp)

    def _compare(self, cmp: _Comparison) -> None:
        shadow_bad, primary_bad = cmp.shadow.bad, bool(cmp.primary_bad)
        self.verifications += 1
        task = cmp.primary
        if shadow_bad and task.measured:
            self.caught["shadow"] += 1
        if primary_bad and task.measured:
            self.caught["audit"] += 1
        if self.ctx.tracing:
            s, p = self.views[cmp.shadow_agent].name, self.views[cmp.primary_agent].name
            how = "differ: checked" if shadow_bad or primary_bad else "agree"
            self.ctx.log(
                "verdict",
                f"task {task.id}: results {how}; shadow on {s} {_word(shadow_bad)}, "
                f"delivered on {p} {_word(primary_bad)}",
                task,
                agent=s,
            )
        self._learn(cmp.shadow_agent, shadow_bad, task, "shadow")
        self._learn(cmp.primary_agent, primary_bad, task, "comparison")

    def _learn(self, i: int, bad: bool, task: Task, how: str) -> None:
        """A verified outcome of agent ``i``: update its reputation and its standing."""
        if bad:
            self.beta[i] += 1.0
        else:
            self.alpha[i] += 1.0
        before = self.status[i]
        after = self.status[i] = self._status(i, before)
        if after == before:
            return
        view = self.views[i]
        if before == PROBATION:
            self.on_probation.remove(view)
        if self._gates:
            self._regate(view)
        record = self.promoted_after if after == TRUSTED else self.quarantined_after
        outcomes = round(self.alpha[i] + self.beta[i] - self.params.prior_strength)
        record[i] = (self.reported[i], outcomes)
        ctx = self.ctx
        if ctx.tracing:
            verb = "promoted" if after == TRUSTED else "quarantined"
            limit = self.params.promote if after == TRUSTED else self.params.quarantine
            ctx.log(
                "promote" if after == TRUSTED else "quarantine",
                f"{view.name} {verb}: reputation {self._mean(i):.3f} "
                f"{'>=' if after == TRUSTED else '<'} {limit:g} after {self.reported[i]} "
                f"results ({self.alpha[i]:g}, {self.beta[i]:g}), last by {how} of task {task.id}",
                task,
                agent=view.name,
                value=self._mean(i),
            )
        if after == TRUSTED and self.queue and not self.pull:
            for held in self.queue.drain():  # tasks held for want of a trusted agent
                self.route(held)

    # -- metrics --------------------------------------------------------------------------------
    def metric_rows(self, start: float, end: float) -> list[MetricRow]:
        """Caught bad results, verifications, promotions, quarantines and reputations."""
        views = self.views
        caught = self.caught
        rows: list[MetricRow] = [
            ("bad_caught", "all", float(caught["shadow"] + caught["audit"])),
            ("bad_caught", "via=shadow", float(caught["shadow"])),
            ("bad_caught", "via=audit", float(caught["audit"])),
            ("verifications", "all", float(self.verifications)),
            ("promoted", "all", float(len(self.promoted_after))),
            ("quarantined", "all", float(len(self.quarantined_after))),
        ]
        for group in sorted({v.group for v in views}):
            members = {v.index for v in views if v.group == group}
            for name, record in (
                ("promoted", self.promoted_after),
                ("quarantined", self.quarantined_after),
            ):
                rows.append((name, f"group={group}", float(len(members & record.keys()))))
        for name, record in (
            ("promotion", self.promoted_after),
            ("quarantine", self.quarantined_after),
        ):
            for what, k in (("tasks", 0), ("outcomes", 1)):
                metric = f"{name}_{what}"
                rows.append((metric, "all", _mean([r[k] for r in record.values()])))
                for i in self.started_on_probation:
                    got = record.get(i)
                    rows.append((metric, f"agent={views[i].name}", float(got[k]) if got else _NAN))
        rows.extend(("reputation", f"agent={v.name}", self._mean(v.index)) for v in views)
        return rows


def _word(bad: bool) -> str:
    return "bad" if bad else "good"


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else float("nan")

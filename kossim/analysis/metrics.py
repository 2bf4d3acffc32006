"""From one run's task columns to tidy metric rows ``(metric, scope, value)``.

Only *measured* tasks count (those that arrived after the warm-up).
``lost`` is arrivals minus every terminal and live state found by walking the
engine's structures at the end: it must be 0, and a nonzero value is an
engine bug, not a modelling outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from kossim.analysis.tally import Tally
from kossim.runspec import MetricRow
from kossim.states import DONE

__all__ = [
    "ARBITER_METRICS",
    "CORE_METRICS",
    "FAILOVER_METRICS",
    "LOCK_METRICS",
    "PAUSE_METRICS",
    "ROLE_METRICS",
    "SPECULATION_METRICS",
    "ColumnSummary",
    "RunFacts",
    "TaskSummary",
    "compute_metrics",
    "in_system_area",
    "metrics_of",
    "sojourn_quantiles",
]

CORE_METRICS = (
    "wait_mean",
    "wait_prob",
    "sojourn_mean",
    "sojourn_p50",
    "sojourn_p95",
    "sojourn_p99",
    "throughput",
    "goodput",
    "utilization",
    "busy_share",
    "arrived",
    "completed",
    "abandoned",
    "rejected",
    "rejection_rate",
    "reneged",
    "dropped",
    "in_flight",
    "lost",
    "retries",
    "deadline_miss_rate",
    "jain_fairness",
    "messages",
    "in_system_mean",
    "suspicions",
    "false_suspicions",
    "detection_latency_mean",
    "duplicates",
    "duplicate_work",
    "hops_mean",
    "delegation_delay_mean",
)


@dataclass
class RunFacts:
    """What the metrics need besides the task columns."""

    arrived_measured: int
    window_start: float
    window_end: float
    agent_names: list[str]
    agent_busy: list[float]
    """Busy slot-time of each agent inside the window."""
    agent_capacity: list[int]
    messages: int
    type_names: list[str]
    agent_down: list[float] = field(default_factory=list)
    """Time each agent spent down inside the window (none given: never down)."""
    messages_by_kind: dict[str, int] = field(default_factory=dict)
    coordination: dict[str, float] = field(default_factory=dict)
    """Figures of the failure detectors and task copies, by metric name (scope ``all``)."""
    """Network messages in the window per message kind (scope ``kind=K``)."""
    bundles: dict[str, float] = field(default_factory=dict)
    """Figures of bundles (subtasks, cancellations, gang reservations), when the workload has
    any: scope ``all``, plus ``reservation_share`` of the slot-time."""
    max_hops: int = 0
    """The agents' hop limit (0 without delegation): the hop distribution has a row for
    every count up to it, so that runs of one policy have the same rows."""
    behaviour_rows: list[MetricRow] = field(default_factory=list)
    """Rows the actors' behaviours measured themselves (``Behaviour.metric_rows``)."""


def _task_rows(
    cols: dict[str, np.ndarray], sel: np.ndarray, span: float, end: float
) -> dict[str, float]:
    return Tally.of(cols, sel, end).values(span)


def _in_system_mean(cols: dict[str, np.ndarray], start: float, end: float) -> float:
    """Time-average number of tasks in the system over the window (all tasks)."""
    return in_system_area(cols, start, end) / (end - start) if end > start else float("nan")


def in_system_area(cols: dict[str, np.ndarray], start: float, end: float) -> float:
    """The tasks' time in the system inside the window ``[start, end]`` (live ones: to ``end``)."""
    a = cols["arrival"]
    e = np.where(cols["end"] >= 0, cols["end"], end)
    overlap = np.clip(np.minimum(e, end) - np.maximum(a, start), 0, None)
    return float(overlap.sum())


class TaskSummary(Protocol):
    """The per-task figures the metrics need: from whole columns or streamed."""

    def overall(self) -> Tally: ...

    def by_priority(self) -> list[tuple[int, Tally]]:
        """Every priority of a measured task, ascending."""
        ...

    def by_type(self, tidx: int) -> Tally: ...

    def in_system_mean(self) -> float: ...

    def hop_counts(self) -> np.ndarray:
        """Measured completed tasks by hop count (``np.bincount`` of their hops)."""
        ...

    def agent_done(self) -> np.ndarray:
        """Measured completed tasks by agent index (``np.bincount``, may be short)."""
        ...


class ColumnSummary:
    """The figures of a run's whole task columns (exact quantiles)."""

    def __init__(self, cols: dict[str, np.ndarray], start: float, end: float) -> None:
        self.cols, self.start, self.end = cols, start, end
        self.m = cols["measured"]

    def overall(self) -> Tally:
        return Tally.of(self.cols, self.m, self.end)

    def by_priority(self) -> list[tuple[int, Tally]]:
        prio = self.cols["priority"]
        return [
            (int(v), Tally.of(self.cols, self.m & (prio == v), self.end))
            for v in np.unique(prio[self.m])
        ]

    def by_type(self, tidx: int) -> Tally:
        return Tally.of(self.cols, self.m & (self.cols["tidx"] == tidx), self.end)

    def in_system_mean(self) -> float:
        return _in_system_mean(self.cols, self.start, self.end)

    def _done(self, name: str) -> np.ndarray:
        return self.cols[name][self.m & (self.cols["state"] == DONE)].astype(np.int64)

    def hop_counts(self) -> np.ndarray:
        return np.bincount(self._done("hops"))

    def agent_done(self) -> np.ndarray:
        return np.bincount(self._done("agent"))


def compute_metrics(cols: dict[str, np.ndarray], facts: RunFacts) -> list[MetricRow]:
    """Tidy metric rows for scopes ``all``, ``priority=K``, ``type=T``, ``agent=NAME``."""
    return metrics_of(ColumnSummary(cols, facts.window_start, facts.window_end), facts)


def metrics_of(tasks: TaskSummary, facts: RunFacts) -> list[MetricRow]:
    """The rows of :func:`compute_metrics` from a summary of the tasks (columns or streamed)."""
    start, end = facts.window_start, facts.window_end
    span = end - start
    rows: list[MetricRow] = []
    tally = tasks.overall()
    overall = tally.values(span)
    in_flight = float(tally.in_flight)
    overall["arrived"] = float(facts.arrived_measured)
    overall["in_flight"] = in_flight
    ended = overall["completed"] + overall["abandoned"] + overall["rejected"] + overall["dropped"]
    overall["lost"] = overall["arrived"] - ended - in_flight
    busy = np.asarray(facts.agent_busy, dtype=float)
    cap = np.asarray(facts.agent_capacity, dtype=float)
    down = np.asarray(facts.agent_down or [0.0] * len(busy), dtype=float)
    available = cap * np.maximum(span - down, 0.0)  # slot-time while up
    with np.errstate(invalid="ignore", divide="ignore"):
        util = busy / available if span > 0 else np.full(len(busy), np.nan)
    total = float(available.sum())
    overall["utilization"] = float(busy.sum() / total) if total > 0 else float("nan")
    overall["busy_share"] = float(busy.sum() / (cap.sum() * span)) if span > 0 else float("nan")
    overall["jain_fairness"] = _jain(util)
    overall["messages"] = float(facts.messages)
    overall["in_system_mean"] = tasks.in_system_mean()
    for name in COORDINATION:
        overall[name] = facts.coordination.get(name, float("nan"))
    rows.extend((k, "all", overall[k]) for k in CORE_METRICS)
    if facts.bundles:
        rows.extend((k, "all", v) for k, v in facts.bundles.items())
        slot_time = float(cap.sum()) * span
        share = facts.bundles["reservation_idle"] / slot_time if slot_time > 0 else float("nan")
        rows.append(("reservation_share", "all", share))
    for v, t in tasks.by_priority():
        rows.extend(_scope_rows(t, f"priority={v}", span))
    for i, name in enumerate(facts.type_names):
        rows.extend(_scope_rows(tasks.by_type(i), f"type={name}", span, TYPE_SCOPED))
    rows.extend(_hop_shares(tasks.hop_counts(), facts.max_hops))
    for kind, n in sorted(facts.messages_by_kind.items()):
        rows.append(("messages", f"kind={kind}", float(n)))
    for name, u, b in zip(facts.agent_names, util, busy, strict=True):
        rows.append(("utilization", f"agent={name}", float(u)))
        rows.append(("busy_time", f"agent={name}", float(b)))
    rows.extend(facts.behaviour_rows)
    counts = tasks.agent_done()
    for i, name in enumerate(facts.agent_names):
        rows.append(("completed", f"agent={name}", float(counts[i]) if i < counts.size else 0.0))
    return rows


COORDINATION = (
    "suspicions",
    "false_suspicions",
    "detection_latency_mean",
    "duplicates",
    "duplicate_work",
)
"""Metrics the engine's ledger measures (failure detection and task copies)."""

FAILOVER_METRICS = (
    "coordinator_outage",
    "coordinator_failures",
    "takeovers",
    "failovers",
    "takeover_time_mean",
    "failover_detection_mean",
    "failover_false_suspicions",
    "view_rebuild_mean",
    "failover_delayed",
    "failover_delay_mean",
    "standby_takeovers",
    "standby_tasks_taken",
    "entry_resends",
    "entry_duplicates",
)
"""Metrics of coordinator failover (:mod:`kossim.sim.failover`), when the coordinator can
fail or the policy keeps standbys."""

SPECULATION_METRICS = ("backups", "backup_wins", "stragglers_flagged")
"""Metrics of speculative execution (:mod:`policies.speculation`), scope ``all``, over
measured tasks: only in runs whose policy has a ``speculation`` component."""

ARBITER_METRICS = (
    "arbitrations",
    "arbiter_aborts",
    "arbiter_escalations",
    "arbiter_reassigns",
)
"""Metrics of runs whose policy has an arbiter (:mod:`kossim.sim.arbitration`):
``arbitrations`` (scopes ``all``, ``event=K`` for every event kind, ``decision=D`` for
every action) and the count of each acting decision, inside the measurement window."""

ROLE_METRICS = (
    "fallbacks",
    "fallback_share",
    "transfer_time_mean",
    "local_share",
    "affinity_share",
    "proficiency_mean",
)
"""Metrics of roles, experience and data locality (:mod:`kossim.sim.roles`), over measured
completed tasks, scopes ``all`` and ``type=T``: only in runs whose scenario uses them."""

LOCK_METRICS = (
    "lock_grants",
    "lock_wait_mean",
    "lock_wait_p95",
    "lock_waiting",
    "lock_contended",
    "lease_expiries",
    "lease_renewals",
    "resource_writes",
    "fenced_writes",
    "safety_violations",
)
"""Metrics of shared resources, their leases and writes (:mod:`kossim.sim.locks`), scopes
``all`` and ``resource=R``: only in runs whose scenario declares resources and whose policy
runs a lock service."""

PAUSE_METRICS = ("pauses", "paused_time")
"""Process pauses begun in the measurement window and their time inside it (agent-time),
scopes ``all`` and ``group=G``: only in runs whose agents pause (:mod:`kossim.sim.pauses`)."""

SCOPED = (
    "arrived",
    "completed",
    "wait_mean",
    "sojourn_mean",
    "sojourn_p95",
    "throughput",
    "deadline_miss_rate",
    "abandoned",
)
TYPE_SCOPED = (
    *SCOPED,
    "hops_mean",
    "delegation_delay_mean",
    "rejected",
    "rejection_rate",
    "reneged",
)


def _scope_rows(
    tally: Tally, scope: str, span: float, names: tuple[str, ...] = SCOPED
) -> Iterable[MetricRow]:
    vals = tally.values(span)
    vals["arrived"] = float(tally.n)
    return [(k, scope, vals[k]) for k in names]


def _hop_shares(counts: np.ndarray, max_hops: int) -> list[MetricRow]:
    """The hop distribution: the share of measured completed tasks handed off K times
    (scope ``hops=K``, for every K from 0 to the hop limit or the most seen)."""
    total = int(counts.sum())
    if not total:
        return []
    if counts.size < max_hops + 1:
        counts = np.concatenate([counts, np.zeros(max_hops + 1 - counts.size, dtype=counts.dtype)])
    return [("hops_share", f"hops={k}", int(n) / total) for k, n in enumerate(counts)]


def _jain(x: np.ndarray) -> float:
    """Jain's fairness index of per-agent utilisation: 1 = perfectly even."""
    s2 = float((x**2).sum())
    return float(x.sum() ** 2 / (len(x) * s2)) if s2 > 0 else float("nan")


def sojourn_quantiles(cols: dict[str, np.ndarray]) -> list[float]:
    """Sojourn quantiles at 0, 1, ..., 100 % of measured completed tasks."""
    done = cols["measured"] & (cols["state"] == DONE)
    s = cols["end"][done] - cols["arrival"][done]
    if s.size == 0:
        return [float("nan")] * 101
    return [float(v) for v in np.percentile(s, np.arange(101))]

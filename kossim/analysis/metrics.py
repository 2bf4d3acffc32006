"""From one run's task columns to tidy metric rows ``(metric, scope, value)``.

Only *measured* tasks count (those that arrived after the warm-up).
``lost`` is arrivals minus every terminal and live state found by walking the
engine's structures at the end: it must be 0, and a nonzero value is an
engine bug, not a modelling outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from kossim.runspec import MetricRow
from kossim.states import ABANDONED, DONE, REJECTED, RENEGED, TERMINAL

__all__ = ["CORE_METRICS", "ROLE_METRICS", "RunFacts", "compute_metrics", "sojourn_quantiles"]

CORE_METRICS = (
    "wait_mean",
    "wait_prob",
    "sojourn_mean",
    "sojourn_p50",
    "sojourn_p95",
    "sojourn_p99",
    "throughput",
    "utilization",
    "busy_share",
    "arrived",
    "completed",
    "abandoned",
    "rejected",
    "rejection_rate",
    "reneged",
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


def _nan_stat(values: np.ndarray, fn: str, q: float = 0.0) -> float:
    if values.size == 0:
        return float("nan")
    if fn == "mean":
        return float(values.mean())
    return float(np.percentile(values, q))


def _task_rows(
    cols: dict[str, np.ndarray], sel: np.ndarray, span: float, end: float
) -> dict[str, float]:
    state = cols["state"][sel]
    done = state == DONE
    reneged = state == RENEGED
    rejected = state == REJECTED
    abandoned = (state == ABANDONED) | reneged  # reneging is abandonment, for a reason
    unserved = abandoned | rejected
    arrival = cols["arrival"][sel]
    sojourn = (cols["end"][sel] - arrival)[done]
    wait = (cols["start"][sel] - arrival)[done]
    deadline = cols["deadline"][sel]
    has_dl = np.isfinite(deadline)
    finished_late = done & (cols["end"][sel] > deadline)
    overdue_live = (~done) & (~unserved) & (deadline < end)
    judged = has_dl & (done | unserved | overdue_live)
    missed = has_dl & (finished_late | unserved | overdue_live)
    n = state.size
    return {
        "completed": float(done.sum()),
        "abandoned": float(abandoned.sum()),
        "rejected": float(rejected.sum()),
        "rejection_rate": float(rejected.sum()) / n if n else float("nan"),
        "reneged": float(reneged.sum()),
        "wait_mean": _nan_stat(wait, "mean"),
        "wait_prob": float((wait > 0).mean()) if wait.size else float("nan"),
        "sojourn_mean": _nan_stat(sojourn, "mean"),
        "sojourn_p50": _nan_stat(sojourn, "pct", 50),
        "sojourn_p95": _nan_stat(sojourn, "pct", 95),
        "sojourn_p99": _nan_stat(sojourn, "pct", 99),
        "throughput": float(done.sum()) / span if span > 0 else float("nan"),
        "retries": float(np.maximum(cols["attempts"][sel].astype(np.int64) - 1, 0).sum()),
        "deadline_miss_rate": float(missed.sum() / judged.sum()) if judged.any() else float("nan"),
        "hops_mean": _nan_stat(cols["hops"][sel][done].astype(np.float64), "mean"),
        "delegation_delay_mean": _nan_stat(cols["handoff"][sel][done], "mean"),
    }


def _in_system_mean(cols: dict[str, np.ndarray], start: float, end: float) -> float:
    """Time-average number of tasks in the system over the window (all tasks)."""
    a = cols["arrival"]
    e = np.where(cols["end"] >= 0, cols["end"], end)
    overlap = np.clip(np.minimum(e, end) - np.maximum(a, start), 0, None)
    return float(overlap.sum() / (end - start)) if end > start else float("nan")


def compute_metrics(cols: dict[str, np.ndarray], facts: RunFacts) -> list[MetricRow]:
    """Tidy metric rows for scopes ``all``, ``priority=K``, ``type=T``, ``agent=NAME``."""
    start, end = facts.window_start, facts.window_end
    span = end - start
    m = cols["measured"]
    rows: list[MetricRow] = []
    overall = _task_rows(cols, m, span, end)
    live = m & ~np.isin(cols["state"], TERMINAL)
    in_flight = float(live.sum())
    overall["arrived"] = float(facts.arrived_measured)
    overall["in_flight"] = in_flight
    ended = overall["completed"] + overall["abandoned"] + overall["rejected"]
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
    overall["in_system_mean"] = _in_system_mean(cols, start, end)
    for name in COORDINATION:
        overall[name] = facts.coordination.get(name, float("nan"))
    rows.extend((k, "all", overall[k]) for k in CORE_METRICS)
    if facts.bundles:
        rows.extend((k, "all", v) for k, v in facts.bundles.items())
        slot_time = float(cap.sum()) * span
        share = facts.bundles["reservation_idle"] / slot_time if slot_time > 0 else float("nan")
        rows.append(("reservation_share", "all", share))
    rows.extend(_sliced(cols, m, "priority", np.unique(cols["priority"][m]), span, end))
    tidx = cols["tidx"]
    for i, name in enumerate(facts.type_names):
        sel = m & (tidx == i)
        rows.extend(_scope_rows(cols, sel, f"type={name}", span, end, TYPE_SCOPED))
    rows.extend(_hop_shares(cols, m, facts.max_hops))
    for kind, n in sorted(facts.messages_by_kind.items()):
        rows.append(("messages", f"kind={kind}", float(n)))
    for name, u, b in zip(facts.agent_names, util, busy, strict=True):
        rows.append(("utilization", f"agent={name}", float(u)))
        rows.append(("busy_time", f"agent={name}", float(b)))
    rows.extend(facts.behaviour_rows)
    agents = cols["agent"][m & (cols["state"] == DONE)]
    counts = np.bincount(agents, minlength=len(facts.agent_names)) if agents.size else None
    for i, name in enumerate(facts.agent_names):
        rows.append(("completed", f"agent={name}", float(counts[i]) if counts is not None else 0.0))
    return rows


COORDINATION = (
    "suspicions",
    "false_suspicions",
    "detection_latency_mean",
    "duplicates",
    "duplicate_work",
)
"""Metrics the engine's ledger measures (failure detection and task copies)."""

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
    cols: dict[str, np.ndarray],
    sel: np.ndarray,
    scope: str,
    span: float,
    end: float,
    names: tuple[str, ...] = SCOPED,
) -> Iterable[MetricRow]:
    vals = _task_rows(cols, sel, span, end)
    vals["arrived"] = float(sel.sum())
    return [(k, scope, vals[k]) for k in names]


def _hop_shares(cols: dict[str, np.ndarray], m: np.ndarray, max_hops: int) -> list[MetricRow]:
    """The hop distribution: the share of measured completed tasks handed off K times
    (scope ``hops=K``, for every K from 0 to the hop limit or the most seen)."""
    hops = cols["hops"][m & (cols["state"] == DONE)]
    if not hops.size:
        return []
    counts = np.bincount(hops.astype(np.int64), minlength=max_hops + 1)
    return [("hops_share", f"hops={k}", float(n / hops.size)) for k, n in enumerate(counts)]


def _sliced(
    cols: dict[str, np.ndarray],
    m: np.ndarray,
    field: str,
    values: np.ndarray,
    span: float,
    end: float,
) -> list[MetricRow]:
    out: list[MetricRow] = []
    for v in values:
        out.extend(_scope_rows(cols, m & (cols[field] == v), f"{field}={int(v)}", span, end))
    return out


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

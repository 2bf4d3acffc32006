"""What each metric means to a reader: its direction, label and unit.

One table, importable by the report, ``kossim.analysis.check`` and anyone else who has
to say whether a bigger number is good news. Direction is ``-1`` (lower is
better), ``+1`` (higher is better) or ``0`` (neutral: no "best" exists, e.g.
utilisation, where both extremes can be bad).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "BAR_METRICS",
    "KEY_METRICS",
    "METRIC_DIRECTION",
    "METRIC_LABEL",
    "SCOPE_METRICS",
    "TIME_UNIT",
    "axis_label",
    "direction",
    "label",
    "order_metrics",
]

TIME_UNIT = "time (simulated)"
RATE_UNIT = "tasks per unit time (simulated)"

METRIC_DIRECTION: dict[str, int] = {
    "wait_mean": -1,
    "wait_prob": -1,
    "sojourn_mean": -1,
    "sojourn_p50": -1,
    "sojourn_p95": -1,
    "sojourn_p99": -1,
    "throughput": +1,
    "utilization": 0,
    "busy_share": 0,
    "arrived": 0,
    "completed": +1,
    "abandoned": -1,
    "rejected": -1,
    "rejection_rate": -1,
    "reneged": -1,
    "dropped": -1,
    "in_flight": -1,
    "lost": -1,
    "retries": -1,
    "deadline_miss_rate": -1,
    "jain_fairness": +1,
    "messages": -1,
    "in_system_mean": -1,
    "hops_mean": -1,
    "delegation_delay_mean": -1,
    "hops_share": 0,
    "warmup_time": 0,
    "busy_time": 0,
    "suspicions": 0,
    "false_suspicions": -1,
    "detection_latency_mean": -1,
    "partition_suspicions": 0,
    "messages_dropped": -1,
    "partitioned_time": 0,
    "duplicates": -1,
    "duplicate_work": -1,
    "subtasks": 0,
    "subtasks_completed": 0,
    "cancelled_subtasks": -1,
    "cancelled_work": -1,
    "reservation_idle": -1,
    "reservation_share": -1,
    "manager_utilization": -1,
    "manager_decisions": 0,
    "rerouted": -1,
    "tree_depth": 0,
    "view_age_mean": -1,
    "escalated": 0,
    "escalation_share": 0,
    "fallbacks": -1,
    "fallback_share": -1,
    "transfer_time_mean": -1,
    "local_share": +1,
    "affinity_share": +1,
    "proficiency_mean": +1,
}

METRIC_LABEL: dict[str, tuple[str, str]] = {
    "wait_mean": ("mean wait", TIME_UNIT),
    "wait_prob": ("probability of waiting", "fraction"),
    "sojourn_mean": ("mean sojourn", TIME_UNIT),
    "sojourn_p50": ("median sojourn", TIME_UNIT),
    "sojourn_p95": ("95th percentile sojourn", TIME_UNIT),
    "sojourn_p99": ("99th percentile sojourn", TIME_UNIT),
    "throughput": ("throughput", RATE_UNIT),
    "utilization": ("utilisation (of time up)", "fraction"),
    "busy_share": ("busy share (of all time)", "fraction"),
    "arrived": ("arrived", "tasks"),
    "completed": ("completed", "tasks"),
    "abandoned": ("abandoned", "tasks"),
    "rejected": ("rejected by a full buffer", "tasks"),
    "rejection_rate": ("rejection rate", "fraction of arrivals"),
    "reneged": ("reneged (abandoned: patience ran out)", "tasks"),
    "dropped": ("dropped (lost with a message, never recovered)", "tasks"),
    "in_flight": ("in flight at horizon", "tasks"),
    "lost": ("lost", "tasks"),
    "retries": ("retries", "attempts"),
    "deadline_miss_rate": ("deadline miss rate", "fraction"),
    "jain_fairness": ("Jain fairness index", "index in [0, 1]"),
    "messages": ("messages", "messages"),
    "in_system_mean": ("mean tasks in system", "tasks"),
    "hops_mean": ("mean hand-offs per task", "hops"),
    "delegation_delay_mean": ("mean time spent being handed off", TIME_UNIT),
    "hops_share": ("share of tasks by hand-offs", "fraction"),
    "warmup_time": ("warm-up cut", TIME_UNIT),
    "busy_time": ("busy slot-time", TIME_UNIT),
    "suspicions": ("suspicions raised", "suspicions"),
    "false_suspicions": ("false suspicions", "suspicions"),
    "detection_latency_mean": ("mean crash-to-suspicion time", TIME_UNIT),
    "partition_suspicions": ("suspicions of live agents cut off by a partition", "suspicions"),
    "messages_dropped": ("messages lost (loss or partition)", "messages"),
    "partitioned_time": ("time with a partition in force", TIME_UNIT),
    "duplicates": ("task copies made", "copies"),
    "duplicate_work": ("service time spent on losing copies", TIME_UNIT),
    "subtasks": ("bundle subtasks", "subtasks"),
    "subtasks_completed": ("bundle subtasks completed", "subtasks"),
    "cancelled_subtasks": ("bundle subtasks cancelled (quorum reached)", "subtasks"),
    "cancelled_work": ("service time spent on cancelled subtasks", TIME_UNIT),
    "reservation_idle": ("slot-time held idle by gang reservations", TIME_UNIT),
    "reservation_share": ("share of slot-time held idle by gang reservations", "fraction"),
    "manager_utilization": ("manager decision utilisation (busiest: all)", "fraction"),
    "manager_decisions": ("decisions per manager (busiest: all)", "per unit time (simulated)"),
    "rerouted": ("tasks rerouted from failed managers", "tasks"),
    "tree_depth": ("delegation tree depth", "managers"),
    "view_age_mean": ("mean age of the facts behind a delegation", TIME_UNIT),
    "escalated": ("tasks passed up the tree for want of room", "escalations"),
    "escalation_share": ("share of tree entries escalated by their entry manager", "fraction"),
    "fallbacks": ("tasks served by a substitute role", "tasks"),
    "fallback_share": ("share of role tasks served by a substitute", "fraction"),
    "transfer_time_mean": ("mean input transfer time per task", TIME_UNIT),
    "local_share": ("share of data tasks run where their data is", "fraction"),
    "affinity_share": ("share of affinity tasks run on a preferred agent", "fraction"),
    "proficiency_mean": ("mean proficiency of the serving agent", "multiplier"),
}

# Experimental mode: result quality and learned reputations (policies/trust.py).
METRIC_DIRECTION.update(
    {
        "bad_results": -1,
        "bad_delivered": -1,
        "bad_caught": +1,
        "shadows": -1,
        "shadow_work": -1,
        "verifications": 0,
        "promoted": 0,
        "quarantined": 0,
        "promotion_tasks": -1,
        "promotion_outcomes": -1,
        "quarantine_tasks": -1,
        "quarantine_outcomes": -1,
        "reputation": 0,
    }
)
METRIC_LABEL.update(
    {
        "bad_results": ("bad results produced (shadows' included)", "results"),
        "bad_delivered": ("bad results delivered", "results"),
        "bad_caught": ("bad results identified by checks", "results"),
        "shadows": ("shadow copies run", "copies"),
        "shadow_work": ("service time spent on shadows", TIME_UNIT),
        "verifications": ("results verified (audits and comparisons)", "results"),
        "promoted": ("agents promoted from probation", "agents"),
        "quarantined": ("agents quarantined", "agents"),
        "promotion_tasks": ("results reported until promotion", "tasks"),
        "promotion_outcomes": ("verified outcomes until promotion", "outcomes"),
        "quarantine_tasks": ("results reported until quarantine", "tasks"),
        "quarantine_outcomes": ("verified outcomes until quarantine", "outcomes"),
        "reputation": ("reputation (posterior mean)", "probability"),
    }
)

KEY_METRICS: tuple[str, ...] = (
    "sojourn_mean",
    "sojourn_p95",
    "wait_mean",
    "wait_prob",
    "throughput",
    "utilization",
    "completed",
    "abandoned",
    "rejected",
    "reneged",
    "deadline_miss_rate",
    "jain_fairness",
)
"""Metrics a reader looks at first; the rest of the core set is shown folded."""

BAR_METRICS: tuple[str, ...] = (
    "sojourn_mean",
    "wait_mean",
    "throughput",
    "utilization",
    "deadline_miss_rate",
)
"""Metrics drawn as bar charts and against swept parameters."""

SCOPE_METRICS: tuple[str, ...] = ("sojourn_mean", "wait_mean")
"""Metrics broken down per priority tier and per task type."""

_DIRECTION_WORDS = {"lower": -1, "min": -1, "higher": +1, "max": +1, "neutral": 0}


def direction(metric: str, overrides: Mapping[str, Any] | None = None) -> int:
    """Direction of ``metric``; ``overrides`` (a manifest's ``metrics_meta``) wins.

    Metrics added by later features may describe themselves in the manifest as
    ``{"direction": -1 | 0 | 1 | "lower" | "higher" | "neutral"}``; an unknown
    metric is neutral, so the report never claims a winner it cannot justify.
    """
    meta = (overrides or {}).get(metric)
    if isinstance(meta, Mapping) and "direction" in meta:
        raw = meta["direction"]
        if isinstance(raw, str):
            return _DIRECTION_WORDS.get(raw.lower(), 0)
        return int(raw) if raw in (-1, 0, 1) else 0
    return METRIC_DIRECTION.get(metric, 0)


def label(metric: str, overrides: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """Human label and unit of ``metric``, falling back to its name."""
    meta = (overrides or {}).get(metric)
    if isinstance(meta, Mapping) and ("label" in meta or "unit" in meta):
        return str(meta.get("label", metric)), str(meta.get("unit", ""))
    return METRIC_LABEL.get(metric, (metric.replace("_", " "), ""))


def axis_label(metric: str, overrides: Mapping[str, Any] | None = None) -> str:
    """Axis text such as ``mean sojourn [time (simulated)]``."""
    text, unit = label(metric, overrides)
    return f"{text} [{unit}]" if unit else text


def order_metrics(metrics: Iterable[str]) -> list[str]:
    """Core metrics in their canonical order, then any others alphabetically."""
    present = set(metrics)
    core = [m for m in METRIC_DIRECTION if m in present]
    return core + sorted(present - set(core))

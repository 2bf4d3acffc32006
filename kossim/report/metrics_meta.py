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
    "goodput": +1,
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
    "goodput": ("goodput (completed by the deadline)", RATE_UNIT),
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

# Leases, locks and fencing (kossim/sim/locks.py, policies/locks.py).
METRIC_DIRECTION.update(
    {
        "lock_grants": 0,
        "lock_wait_mean": -1,
        "lock_wait_p95": -1,
        "lock_waiting": -1,
        "lock_contended": -1,
        "lease_expiries": -1,
        "lease_renewals": -1,
        "resource_writes": 0,
        "fenced_writes": -1,
        "safety_violations": -1,
        "pauses": 0,
        "paused_time": 0,
    }
)
METRIC_LABEL.update(
    {
        "lock_grants": ("locks granted", "grants"),
        "lock_wait_mean": ("mean wait for a lock at its service", TIME_UNIT),
        "lock_wait_p95": ("95th percentile wait for a lock", TIME_UNIT),
        "lock_waiting": ("lock requests still waiting at the end", "requests"),
        "lock_contended": ("lock requests that waited beyond the bound", "requests"),
        "lease_expiries": ("leases expired without renewal", "leases"),
        "lease_renewals": ("lease renewals received", "renewals"),
        "resource_writes": ("writes accepted by resources", "writes"),
        "fenced_writes": ("stale writes refused by fencing tokens", "writes"),
        "safety_violations": ("stale writes accepted (lost updates)", "writes"),
        "pauses": ("agent process pauses", "pauses"),
        "paused_time": ("agent time spent paused", TIME_UNIT),
    }
)

# Coordinator failover and standbys (kossim/sim/failover.py, policies/failover.py).
METRIC_DIRECTION.update(
    {
        "coordinator_outage": -1,
        "coordinator_failures": 0,
        "takeovers": 0,
        "failovers": 0,
        "takeover_time_mean": -1,
        "failover_detection_mean": -1,
        "failover_false_suspicions": -1,
        "view_rebuild_mean": -1,
        "failover_delayed": -1,
        "failover_delay_mean": -1,
        "standby_takeovers": 0,
        "standby_tasks_taken": 0,
        "entry_resends": -1,
        "entry_duplicates": -1,
    }
)
METRIC_LABEL.update(
    {
        "coordinator_outage": ("time without a leading coordinator", TIME_UNIT),
        "coordinator_failures": ("coordinator crashes", "crashes"),
        "takeovers": ("coordinators taking the lead after an outage", "take-overs"),
        "failovers": ("take-overs by a standby", "take-overs"),
        "takeover_time_mean": ("mean coordinator crash-to-take-over time", TIME_UNIT),
        "failover_detection_mean": ("mean coordinator crash-to-suspicion time", TIME_UNIT),
        "failover_false_suspicions": ("standbys suspecting a live leader", "suspicions"),
        "view_rebuild_mean": ("mean take-over-to-rebuilt-view time", TIME_UNIT),
        "failover_delayed": ("tasks held at the entry by failover", "tasks"),
        "failover_delay_mean": ("mean time a delayed task was held", TIME_UNIT),
        "standby_takeovers": ("standby agents standing in for a failed agent", "take-overs"),
        "standby_tasks_taken": ("waiting tasks taken over by standby agents", "tasks"),
        "entry_resends": ("arrivals re-sent by the entry, unacknowledged", "messages"),
        "entry_duplicates": ("re-sent arrivals the leader had already", "messages"),
    }
)

# Retry queues, backoff and dead letters (policies/retry.py, policies/retry_queue.py).
METRIC_DIRECTION.update(
    {
        "retry_sends": -1,
        "retry_rate_peak": -1,
        "retry_delay_mean": 0,
        "retries_skipped": 0,
        "dead_lettered": -1,
        "given_up": -1,
        "attempt_failures": -1,
    }
)
METRIC_LABEL.update(
    {
        "retry_sends": ("failed attempts sent to routing again", "retries"),
        "retry_rate_peak": ("retry storm: most retries in a window", "retries per unit time"),
        "retry_delay_mean": ("mean wait in the retry queue", TIME_UNIT),
        "retries_skipped": ("retries not sent: the task ended while waiting", "retries"),
        "dead_lettered": ("tasks dead-lettered (out of attempts)", "tasks"),
        "given_up": ("tasks given up (at-most-once)", "tasks"),
        "attempt_failures": ("failed attempts", "attempts"),
    }
)

# Speculative execution: stragglers and their backup copies (policies/speculation.py).
METRIC_DIRECTION.update({"backups": 0, "backup_wins": 0, "stragglers_flagged": 0})
METRIC_LABEL.update(
    {
        "backups": ("backup copies launched for stragglers", "copies"),
        "backup_wins": ("backups that finished before their original", "copies"),
        "stragglers_flagged": ("running copies flagged as stragglers", "copies"),
    }
)

# Arbitration hooks (kossim/arbiter.py, policies/arbiter.py): how often an arbiter was
# asked and how often it acted; what acting is worth shows in deadline misses and goodput.
METRIC_DIRECTION.update(
    {
        "arbitrations": 0,
        "arbiter_aborts": 0,
        "arbiter_escalations": 0,
        "arbiter_reassigns": 0,
    }
)
METRIC_LABEL.update(
    {
        "arbitrations": ("arbitrations (event=K, decision=D)", "decisions"),
        "arbiter_aborts": ("tasks abandoned by the arbiter", "tasks"),
        "arbiter_escalations": ("priority escalations by the arbiter", "decisions"),
        "arbiter_reassigns": ("reassignments by the arbiter", "decisions"),
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

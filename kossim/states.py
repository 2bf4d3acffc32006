"""Task states, shared by the engine and the metrics (a leaf module: no kossim imports)."""

from __future__ import annotations

__all__ = [
    "ABANDONED",
    "CANCELLED",
    "DONE",
    "DROPPED",
    "ORPHANED",
    "QUEUED",
    "REJECTED",
    "RENEGED",
    "RUNNING",
    "STATE_NAMES",
    "SUSPENDED",
    "TERMINAL",
    "TRANSIT",
    "WAITING",
]

WAITING, TRANSIT, QUEUED, RUNNING, SUSPENDED, ORPHANED, DONE, ABANDONED, CANCELLED = range(9)
REJECTED, RENEGED = 9, 10  # backpressure: refused by a full buffer; gave up waiting (patience)
DROPPED = 11  # network faults: lost with a message; live (recoverable), counted ``dropped``
STATE_NAMES = (
    "waiting",
    "transit",
    "queued",
    "running",
    "suspended",
    "orphaned",
    "completed",
    "abandoned",
    "cancelled",
    "rejected",
    "reneged",
    "dropped",
)
TERMINAL = (DONE, ABANDONED, REJECTED, RENEGED)
"""States that end a task. ``CANCELLED`` ends only a *copy* of a task (a duplicate whose
sibling finished first): it is never recorded, the task's own ending is. ``RENEGED`` is an
abandonment (counted in ``abandoned``) whose reason is the task's own patience. ``DROPPED``
is not terminal: the task was lost with a message and a coordinator may still recover it;
one still dropped at the end counts as ``dropped``, not ``in_flight``."""

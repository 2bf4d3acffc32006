"""Task states, shared by the engine and the metrics (a leaf module: no kossim imports)."""

from __future__ import annotations

__all__ = [
    "ABANDONED",
    "CANCELLED",
    "DONE",
    "ORPHANED",
    "QUEUED",
    "RUNNING",
    "STATE_NAMES",
    "SUSPENDED",
    "TERMINAL",
    "TRANSIT",
    "WAITING",
]

WAITING, TRANSIT, QUEUED, RUNNING, SUSPENDED, ORPHANED, DONE, ABANDONED, CANCELLED = range(9)
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
)
TERMINAL = (DONE, ABANDONED)
"""States that end a task. ``CANCELLED`` ends only a *copy* of a task (a duplicate whose
sibling finished first): it is never recorded, the task's own ending is."""

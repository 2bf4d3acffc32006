"""Task states, shared by the engine and the metrics (a leaf module: no kossim imports)."""

from __future__ import annotations

__all__ = [
    "ABANDONED",
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

WAITING, TRANSIT, QUEUED, RUNNING, SUSPENDED, ORPHANED, DONE, ABANDONED = range(8)
STATE_NAMES = (
    "waiting",
    "transit",
    "queued",
    "running",
    "suspended",
    "orphaned",
    "completed",
    "abandoned",
)
TERMINAL = (DONE, ABANDONED)

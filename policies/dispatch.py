"""Dispatch: when a waiting task leaves the coordinator."""

from __future__ import annotations

from kossim.policy import Component

__all__ = ["Central", "Push"]


class Central(Component):
    """One coordinator queue; a task leaves it only when an agent has a free slot (JIT pull)."""

    kind = "dispatch"
    id = "central"
    description = "one coordinator queue; dispatch just in time when a slot frees (M/M/c)"
    pull = True


class Push(Component):
    """Route every task on arrival into an agent's own queue."""

    kind = "dispatch"
    id = "push"
    description = "route each task on arrival into a per-agent queue"
    pull = False

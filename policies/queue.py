"""Queue disciplines: the order inside a queue, and whether an arrival may preempt."""

from __future__ import annotations

from typing import Any

from kossim.policy import Component, Params, TaskView

__all__ = ["Edf", "Fcfs", "Priority", "PriorityPreemptive", "Srpt"]


class Fcfs(Component):
    """First come, first served."""

    kind = "queue"
    id = "fcfs"
    description = "first come, first served"
    preemptive = False
    fifo = True

    def key(self, task: TaskView) -> Any:
        return 0


class Priority(Component):
    """Non-preemptive priority tiers (lower number first), FCFS within a tier."""

    kind = "queue"
    id = "priority"
    description = "non-preemptive priority: lower tier number served first, FCFS within a tier"
    preemptive = False
    fifo = False

    def key(self, task: TaskView) -> Any:
        return task.priority


class PriorityPreemptive(Priority):
    """Preemptive-resume priority: an arrival displaces a running task of a worse tier."""

    id = "priority_preemptive"
    description = "preemptive-resume priority: an urgent arrival displaces a less urgent task"
    preemptive = True


class Srpt(Component):
    """Preemptive shortest remaining processing time (sizes are known to the scheduler)."""

    kind = "queue"
    id = "srpt"
    description = "preemptive shortest remaining work first (task sizes known)"
    preemptive = True
    fifo = False

    def key(self, task: TaskView) -> Any:
        return task.remaining


class EdfParams(Params):
    preemptive: bool = False


class Edf(Component):
    """Earliest deadline first; tasks without a deadline go last."""

    kind = "queue"
    id = "edf"
    description = "earliest (absolute) deadline first; optional preemption"
    Params = EdfParams
    fifo = False

    @property
    def preemptive(self) -> bool:
        return bool(self.params.preemptive)

    def key(self, task: TaskView) -> Any:
        return task.deadline
